// Exceptions thrown at dexloop's API boundaries. The Python extension maps each class to the class
// of the same name in `dexloop.errors`, so a Python caller can catch the precise failure.
#pragma once

#include <stdexcept>
#include <string>

namespace dexloop {

// Base of every dexloop exception.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A dataset's files or metadata are missing, malformed or inconsistent with each other.
class DatasetError : public Error {
 public:
  using Error::Error;
};

// A video file cannot be opened or decoded (missing, truncated, not a video, unsupported codec).
class VideoDecodeError : public Error {
 public:
  using Error::Error;
};

// A video file cannot be created or encoded (unknown codec or option, wrong frame size, disk full).
class VideoEncodeError : public Error {
 public:
  using Error::Error;
};

// Frames of video files cannot be stream-copied into a new one: a range that does not start on a
// keyframe, streams whose parameters differ, an empty range, a missing or damaged source.
class VideoRemuxError : public VideoEncodeError {
 public:
  using VideoEncodeError::VideoEncodeError;
};

// The nearest decoded frame is further from a queried timestamp than the tolerance allows.
class FrameTimestampError : public Error {
 public:
  using Error::Error;
};

// A serial port cannot be opened or configured, or a bus is used in a state that does not allow it.
// Per-transaction failures (timeouts, corrupt replies, servo errors) are statuses, not exceptions,
// until the Python edge.
class BusError : public Error {
 public:
  using Error::Error;
};

// No (complete) reply arrived before a transaction's deadline.
class BusTimeoutError : public BusError {
 public:
  using BusError::BusError;
};

// Replies arrived but were corrupt, from another id, or of the wrong length.
class BusProtocolError : public BusError {
 public:
  using BusError::BusError;
};

// A servo answered with error bits set (overload, overheating, voltage, ...).
class ServoError : public BusError {
 public:
  using BusError::BusError;
};

// Formats a double with enough digits to tell neighbouring frame timestamps apart.
std::string format_seconds(double seconds);

}  // namespace dexloop

// Exceptions thrown at dexloop's API boundaries, each knowing the name of its class in
// dexloop.errors, which the Python extension raises for it (bindings/errors.cpp). Real-time
// paths (bus transactions, the control loop's tick) return statuses instead; the Python
// edge turns those into these classes.
//
// Written by tools/generate_errors.py from errors.toml, the one table of dexloop's errors:
// edit the table, not this file.
#pragma once

#include <stdexcept>

namespace dexloop {

// Base class of every dexloop error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual const char* python_class() const noexcept { return "DexloopError"; }
};

// A dataset's files or metadata are missing, malformed, or inconsistent with each other.
class DatasetError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "DatasetError"; }
};

// A video file cannot be opened or decoded: missing, truncated, not a video, unsupported codec, or
// frames of another size than the dataset declares.
class VideoDecodeError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "VideoDecodeError"; }
};

// A video file cannot be created or encoded: unknown codec or option, a frame of the wrong size, a
// full disk. The message names the file.
class VideoEncodeError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "VideoEncodeError"; }
};

// Frames of video files cannot be stream-copied into a new one: a range that does not start on a
// keyframe, streams of other codec parameters (codec, size, pixel format, time base, frame rate,
// stream headers), a range holding no frame, a missing or damaged source, an existing output. The
// message names the file and the segment.
class VideoRemuxError : public VideoEncodeError {
 public:
  using VideoEncodeError::VideoEncodeError;
  const char* python_class() const noexcept override { return "VideoRemuxError"; }
};

// No decoded frame lies within ``tolerance_s`` of a queried timestamp (LeRobot raises a ValueError
// subclass of the same name).
class FrameTimestampError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "FrameTimestampError"; }
};

// A servo bus cannot be used: the serial port cannot be opened or configured, or failed. A
// ConnectionError, as LeRobot's buses raise for communication failures.
class BusError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "BusError"; }
};

// No (complete) status packet arrived before the transaction's deadline, after every retry.
class BusTimeoutError : public BusError {
 public:
  using BusError::BusError;
  const char* python_class() const noexcept override { return "BusTimeoutError"; }
};

// Replies arrived but were corrupt (checksum, truncation), from another id, or of the wrong length.
class BusProtocolError : public BusError {
 public:
  using BusError::BusError;
  const char* python_class() const noexcept override { return "BusProtocolError"; }
};

// A servo answered with error bits set (voltage, overheating, overload, ...). A RuntimeError, as
// LeRobot raises for status packets with errors.
class ServoError : public Error {
 public:
  using Error::Error;
  const char* python_class() const noexcept override { return "ServoError"; }
};

}  // namespace dexloop

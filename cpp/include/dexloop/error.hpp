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

// The nearest decoded frame is further from a queried timestamp than the tolerance allows.
class FrameTimestampError : public Error {
 public:
  using Error::Error;
};

// Formats a double with enough digits to tell neighbouring frame timestamps apart.
std::string format_seconds(double seconds);

}  // namespace dexloop

"""Exceptions raised by dexloop.

The native core raises these same classes (dexloop._core maps its C++ exceptions onto them), so one
``except`` clause covers a failure wherever it was detected. Messages name the file, key, index or
timestamp involved.

Written by tools/generate_errors.py from errors.toml, the one table of dexloop's errors: edit the
table, not this file.
"""

from __future__ import annotations


class DexloopError(Exception):
    """Base class of every dexloop error."""


class DatasetError(DexloopError):
    """A dataset's files or metadata are missing, malformed, or inconsistent with each other."""


class DatasetIndexError(DatasetError, IndexError):
    """An item or episode index outside the dataset (an IndexError, so iteration protocols work)."""


class DatasetIndexTypeError(DatasetError, TypeError):
    """An item or episode index that is not an integer (a bool, float or string). A TypeError, as
    LeRobot's Hugging Face dataset raises for such keys."""


class DeltaTimestampsError(DatasetError, ValueError):
    """``delta_timestamps`` that are not finite numbers, not multiples of 1/fps within
    ``tolerance_s``, or too far from the current frame to index. A ValueError, as LeRobot raises."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset is neither on local disk nor downloadable (e.g. offline and not cached)."""


class DatasetArgumentError(DatasetError, ValueError, TypeError):
    """An argument of a dataset call is unusable: an empty or non-integer episode list, an unknown
    option value. A ValueError (and a TypeError, for values of the wrong type), as Python raises."""


class DatasetFrameError(DatasetError, ValueError):
    """A frame handed to ``add_frame`` does not match the dataset's features: a missing or extra
    feature, no ``task``, a wrong dtype, shape or type. A ValueError with LeRobot's message, as
    LeRobot's ``validate_frame`` raises."""


class DatasetReadOnlyError(DatasetError, RuntimeError):
    """A recording call (add_frame, save_episode, ...) on a dataset opened for reading. A
    RuntimeError, as LeRobot raises for a read-only dataset."""


class DatasetExistsError(DatasetError, FileExistsError):
    """``create()`` on a dataset folder that already exists: recordings are never overwritten. A
    FileExistsError, as LeRobot raises."""


class DatasetWriteError(DatasetError, OSError):
    """A dataset file cannot be written (a full disk, a file too large, no permission). The message
    names the file; episodes saved before are kept. An OSError, as the failed write was."""


class DatasetUnfinishedError(DatasetError, RuntimeError):
    """A dataset whose recording is not finished: read before ``finalize()``, opened while another
    process records it, or left by a recording that was interrupted (``dexloop dataset repair ROOT``
    or ``LeRobotDataset.resume`` completes it). A RuntimeError, as LeRobot raises for reading a
    dataset being recorded."""


class DatasetUploadError(DatasetError, ConnectionError):
    """A dataset could not be pushed to the Hugging Face Hub (offline, refused, unreachable); the
    local dataset is untouched."""


class DatasetVersionError(DatasetError):
    """The dataset's codebase_version is one dexloop cannot read."""


class VideoDecodeError(DexloopError):
    """A video file cannot be opened or decoded: missing, truncated, not a video, unsupported codec,
    or frames of another size than the dataset declares."""


class VideoEncodeError(DexloopError):
    """A video file cannot be created or encoded: unknown codec or option, a frame of the wrong
    size, a full disk. The message names the file."""


class VideoRemuxError(VideoEncodeError):
    """Frames of video files cannot be stream-copied into a new one: a range that does not start on
    a keyframe, streams of other codec parameters (codec, size, pixel format, time base, frame rate,
    stream headers), a range holding no frame, a missing or damaged source, an existing output. The
    message names the file and the segment."""


class FrameTimestampError(DexloopError, ValueError):
    """No decoded frame lies within ``tolerance_s`` of a queried timestamp (LeRobot raises a
    ValueError subclass of the same name)."""


class BusError(DexloopError, ConnectionError):
    """A servo bus cannot be used: the serial port cannot be opened or configured, or failed. A
    ConnectionError, as LeRobot's buses raise for communication failures."""


class BusTimeoutError(BusError, TimeoutError):
    """No (complete) status packet arrived before the transaction's deadline, after every retry."""


class BusProtocolError(BusError):
    """Replies arrived but were corrupt (checksum, truncation), from another id, or of the wrong
    length."""


class ServoError(DexloopError, RuntimeError):
    """A servo answered with error bits set (voltage, overheating, overload, ...). A RuntimeError,
    as LeRobot raises for status packets with errors."""


class SafetyLimitError(DexloopError, ValueError):
    """A command outside the configured safety limits of a robot."""


class ControlLoopFaultError(DexloopError, RuntimeError):
    """The control loop holds the arm because of a fault that is not the bus's: no fresh action
    within the action timeout (a policy gone quiet), a streak of overrun ticks, or an e-stop. The
    message names the fault; bus faults raise the bus's own errors and refused goals
    SafetyLimitError."""


class DeviceNotConnectedError(DexloopError, ConnectionError):
    """A device (motors bus, robot, camera) is used before ``connect()`` or after ``disconnect()``.
    A ConnectionError, as LeRobot's error of the same name."""


class DeviceAlreadyConnectedError(DexloopError, ConnectionError):
    """``connect()`` on a device that is already connected. A ConnectionError, as LeRobot's error of
    the same name."""


class HandshakeError(DexloopError, RuntimeError):
    """The motors answering on a bus are not the configured ones: missing ids, other model numbers,
    or (Feetech) differing firmware versions. A RuntimeError, as LeRobot raises for a failed motor
    check."""


class CalibrationError(DexloopError, ValueError):
    """A calibration file or calibration is missing, malformed or unusable (e.g. range_min ==
    range_max). The message names the file or motor involved."""


class PolicyError(DexloopError):
    """A policy, its checkpoint or its processors cannot be built, loaded or run as asked. The
    message names the file and the key involved."""


class PolicyConfigError(PolicyError, ValueError):
    """A policy's config.json is missing or unusable: no ``type``, a type no policy is registered
    under, a field the config class lacks, a value its validation refuses. A ValueError, as LeRobot
    raises."""


class PolicyNotFoundError(PolicyError, FileNotFoundError):
    """A policy checkpoint file (config.json, model.safetensors, a processor file) is neither in the
    given folder nor downloadable from the Hub. A FileNotFoundError, as LeRobot raises."""


class CheckpointError(PolicyError, KeyError):
    """A policy's weights do not fit the model: a missing, unexpected or mismatched-shape key in
    model.safetensors, or no weights file. Nothing is loaded partially."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProcessorError(PolicyError, ValueError):
    """A processor pipeline's files or statistics are missing or unusable: no
    policy_preprocessor.json, an unknown step, a missing state file, a feature normalised without
    the statistics it needs."""


class PolicyFeatureError(PolicyError, ValueError):
    """The features handed to a policy do not match its config: a key the policy needs is absent
    from the dataset or the batch, or has another shape."""


class TrainingError(DexloopError):
    """Training cannot start or go on: an unusable training configuration, or a training checkpoint
    whose files are missing, malformed or do not fit what is being trained."""


class TrainingConfigError(TrainingError, ValueError):
    """A training, optimizer or scheduler configuration that cannot be used (an unknown scheduler
    name, a missing required value, a resume without a checkpoint). A ValueError, as LeRobot raises
    for bad configurations; the message names the option."""


class TrainingStateError(TrainingError):
    """A checkpoint's ``training_state`` (optimizer, scheduler, RNG state, training step) is
    missing, malformed, or belongs to another model or optimizer. The message names the file and the
    key."""


class KinematicsError(DexloopError, ValueError):
    """A kinematics request that cannot be answered: a robot description that does not load, an
    unknown frame or joint, a joint vector of the wrong length or with non-finite values. A
    ValueError; the message names the file, frame or joint."""


class EnvError(DexloopError, ValueError):
    """A simulated environment cannot be built or stepped as asked: an unknown option, an action of
    the wrong shape or with non-finite values, a camera that cannot be rendered. A ValueError; the
    message names the option or the action's entry."""


class ExportError(DexloopError):
    """A policy cannot be exported as asked: an unsupported policy type or precision, an exporter or
    quantiser failure, an exported graph whose outputs disagree with the torch policy. The message
    names the checkpoint or the graph file."""


class ExportManifestError(ExportError, ValueError):
    """An exported model folder is unusable: its manifest (dexloop_export.json) is missing,
    unreadable or of another format version, or a graph file it lists is missing or does not match
    its hash."""


class InferenceError(DexloopError):
    """An inference runtime cannot run: a backend (ONNX Runtime, TensorRT, CUDA) is not installed or
    has no device, or a session fails. The message names what to install or the graph file."""


class InferenceInputError(InferenceError, ValueError):
    """An observation handed to a runtime does not fit the exported graph: a missing input, a wrong
    dtype or shape. The message names the input, what the manifest expects and what was given."""


class AsyncInferenceError(DexloopError):
    """The async-inference transport (dexloop.async_inference: a policy server and its robot-side
    client) cannot work as asked. The subclasses say which side and why."""


class AsyncInferenceConfigError(AsyncInferenceError, ValueError):
    """A policy server or client setting that cannot be used: a bind address other than loopback
    without a token, an unusable token, port or size limit, a policy whose features exceed the
    limits. A ValueError; the message names the option and the fix."""


class AsyncMessageError(AsyncInferenceError, ValueError):
    """A message of the async-inference protocol that does not parse or does not fit the policy: an
    unknown or missing camera or state key, image bytes that are not height x width x channels, a
    shape over the limits, non-finite values, a handshake of another protocol version. A ValueError;
    the message names the field and what was expected."""


class PolicyServerError(AsyncInferenceError, ConnectionError):
    """A policy server cannot be started (its address cannot be bound), reached, or kept talking to
    (the connection failed, the server refused the session or now hosts another policy). A
    ConnectionError; the message names the address and the gRPC status."""


class PolicyServerAuthError(PolicyServerError, PermissionError):
    """The policy server refused the client's credentials (no token, or another token than the
    server's: gRPC status UNAUTHENTICATED). Also a PermissionError."""


__all__ = [
    "AsyncInferenceConfigError",
    "AsyncInferenceError",
    "AsyncMessageError",
    "BusError",
    "BusProtocolError",
    "BusTimeoutError",
    "CalibrationError",
    "CheckpointError",
    "ControlLoopFaultError",
    "DatasetArgumentError",
    "DatasetError",
    "DatasetExistsError",
    "DatasetFrameError",
    "DatasetIndexError",
    "DatasetIndexTypeError",
    "DatasetNotFoundError",
    "DatasetReadOnlyError",
    "DatasetUnfinishedError",
    "DatasetUploadError",
    "DatasetVersionError",
    "DatasetWriteError",
    "DeltaTimestampsError",
    "DeviceAlreadyConnectedError",
    "DeviceNotConnectedError",
    "DexloopError",
    "EnvError",
    "ExportError",
    "ExportManifestError",
    "FrameTimestampError",
    "HandshakeError",
    "InferenceError",
    "InferenceInputError",
    "KinematicsError",
    "PolicyConfigError",
    "PolicyError",
    "PolicyFeatureError",
    "PolicyNotFoundError",
    "PolicyServerAuthError",
    "PolicyServerError",
    "ProcessorError",
    "SafetyLimitError",
    "ServoError",
    "TrainingConfigError",
    "TrainingError",
    "TrainingStateError",
    "VideoDecodeError",
    "VideoEncodeError",
    "VideoRemuxError",
]

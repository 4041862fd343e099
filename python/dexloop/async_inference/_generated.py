"""The protobuf and gRPC modules of ``async_inference.proto``, generated when this module is imported.

Generated code is never checked in, and none is written into the package: at first import protoc
(grpcio-tools' bundled one, so the code fits the installed protobuf and grpcio whatever their
versions) compiles the .proto into a temporary folder, the two modules are loaded from there under
the names protoc's own imports expect (``dexloop.async_inference.async_inference_pb2`` and
``..._pb2_grpc``), and the folder is removed. It takes a few milliseconds, once per process.

Where the .proto is found, first match wins:

1. a source checkout (the editable install, the tests): the canonical ``proto/dexloop/async_inference.proto``
   of the repository this module lies in, so an edit to it takes effect at the next import;
2. an installed wheel: the copy CMake installs next to this module (``install(FILES ...)`` in
   CMakeLists.txt), found on the package's search path.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO_NAME = "async_inference.proto"
# The path protoc compiles the file under. It decides the generated modules' names and the import
# protoc writes into the _pb2_grpc module, so both live inside this package whatever the file's
# place on disk (protoc maps the virtual path onto the real file).
VIRTUAL_PATH = "dexloop/async_inference/" + PROTO_NAME
PB2_NAME = "dexloop.async_inference.async_inference_pb2"
PB2_GRPC_NAME = "dexloop.async_inference.async_inference_pb2_grpc"
INSTALL_HINT = "pip install 'dexloop[serve]' (grpcio, grpcio-tools, protobuf)"


def proto_path(module_dir: Path | None = None) -> Path:
    """The .proto this process compiles (see the module docstring for the search order), looked
    for from ``module_dir`` (default: this module's folder)."""
    here = Path(__file__).resolve().parent if module_dir is None else Path(module_dir)
    repo = here.parents[2]
    checkout = repo / "proto" / "dexloop" / PROTO_NAME
    if (repo / "pyproject.toml").is_file() and checkout.is_file():
        return checkout
    package = sys.modules.get(__package__ or "") if module_dir is None else None
    for folder in [here, *(Path(p) for p in getattr(package, "__path__", ()))]:
        if (folder / PROTO_NAME).is_file():
            return folder / PROTO_NAME
    raise ImportError(
        f"dexloop.async_inference: {PROTO_NAME} is neither in {here} nor in a source checkout's proto/ "
        "folder; the installation is incomplete, reinstall dexloop"
    )


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _generate() -> tuple[ModuleType, ModuleType]:
    try:
        import google.protobuf  # noqa: F401
        import grpc  # noqa: F401  (the _pb2_grpc module imports it)
        from grpc_tools import protoc
    except ImportError as error:
        raise ImportError(f"dexloop.async_inference needs gRPC and protobuf: {INSTALL_HINT}") from error
    import importlib.resources

    source = proto_path()
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="dexloop-proto-") as out:
        status = protoc.main(
            [
                "protoc",
                f"--proto_path={well_known}",
                f"--proto_path={VIRTUAL_PATH}={source}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                VIRTUAL_PATH,
            ]
        )
        if status != 0:
            raise ImportError(f"{source}: protoc failed (status {status}); its messages are on stderr")
        generated = Path(out) / "dexloop" / "async_inference"
        pb2 = _load(PB2_NAME, generated / "async_inference_pb2.py")
        pb2_grpc = _load(PB2_GRPC_NAME, generated / "async_inference_pb2_grpc.py")
    return pb2, pb2_grpc


pb2, pb2_grpc = _generate()

__all__ = ["PROTO_NAME", "pb2", "pb2_grpc", "proto_path"]

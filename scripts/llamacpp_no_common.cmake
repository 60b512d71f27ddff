# Passed to llama-cpp-python's build as CMAKE_PROJECT_INCLUDE (see the Makefile).
# llama-cpp-python forces llama.cpp's `common` library on, installs it beside
# the bindings and never loads it; it is the slowest part of the compile
# (argument parsing, chat templates, JSON). A normal variable set here, at the
# first project() call, shadows that cache entry (policies CMP0126 and CMP0077),
# so llama.cpp skips `common` and its HTTP library. The libraries the bindings
# load (llama, ggml, ggml-base, ggml-cpu) are built exactly as before.
set(LLAMA_BUILD_COMMON OFF)

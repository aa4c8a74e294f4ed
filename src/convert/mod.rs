//! Model conversion into whisper.cpp's ggml format.

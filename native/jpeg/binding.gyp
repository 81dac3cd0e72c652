{
  "targets": [
    {
      "target_name": "casl_jpeg",
      "sources": ["jpeg_letterbox.c"],
      "libraries": ["-ljpeg"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}

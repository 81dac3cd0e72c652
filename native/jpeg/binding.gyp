{
  "targets": [
    {
      "target_name": "casl_jpeg",
      "sources": ["jpeg_letterbox.c"],
      "include_dirs": ["<!@(pkg-config --cflags-only-I libpng 2>/dev/null | sed 's/-I//g')"],
      "libraries": ["-ljpeg", "<!@(pkg-config --libs libpng 2>/dev/null || echo -lpng)"],
      "cflags": ["-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}

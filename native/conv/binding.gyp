{
  "targets": [
    {
      "target_name": "casl_conv",
      "sources": ["conv.cc"],
      "cflags_cc": ["-O3", "-march=native", "-std=c++17", "-ffp-contract=fast"],
      "cflags_cc!": ["-fno-rtti"],
      "libraries": ["-lpthread"]
    }
  ]
}

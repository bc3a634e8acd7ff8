{
  "targets": [
    {
      "target_name": "regfs_native",
      "sources": ["zran/inflate.c", "sd/notify.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "regfs_zstd",
      "sources": ["zstd/decode.c"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-lzstd"]
    }
  ]
}

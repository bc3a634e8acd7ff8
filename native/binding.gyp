{
  "targets": [
    {
      "target_name": "regfs_native",
      "sources": ["zran/inflate.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "regfs_native",
      "sources": ["zran/inflate.c", "sd/notify.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}

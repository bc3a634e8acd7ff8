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
    },
    {
      # fuse-native 2.2.6 made byte-exact (names, link targets, xattrs, pre-1970 times) by
      # scripts/patch-fuse-native.mjs, which also writes fuse-native's index.js next to the binary.
      "target_name": "regfs_fuse",
      "actions": [
        {
          "action_name": "patch_fuse_native",
          "inputs": ["../scripts/patch-fuse-native.mjs", "<!(node -p \"require.resolve('fuse-native/fuse-native.c')\")", "<!(node -p \"require.resolve('fuse-native/index.js')\")"],
          "outputs": ["<(INTERMEDIATE_DIR)/fuse-native.c", "<(PRODUCT_DIR)/fuse-native.cjs"],
          "action": ["node", "../scripts/patch-fuse-native.mjs", "<(INTERMEDIATE_DIR)", "<(PRODUCT_DIR)"]
        }
      ],
      "sources": ["<(INTERMEDIATE_DIR)/fuse-native.c"],
      "include_dirs": [
        "<!(node -p \"require('path').dirname(require.resolve('napi-macros/napi-macros.h'))\")",
        "<!(node -p \"require('fuse-shared-library-linux').include\")"
      ],
      # Debian's libfuse2 (the runtime fuse-native always ends up loading anyway).
      "libraries": ["-l:libfuse.so.2", "-lpthread"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-function"]
    },
    {
      # SCM_RIGHTS both ways (sd_notify FDSTORE, the holder), FUSE_NOTIFY_RESEND and a FUSE mount
      # whose descriptor regfs serves itself (issue #19).
      "target_name": "regfs_fd",
      "sources": ["fuse/fd-pass.c", "fuse/fd-msg.c", "fuse/mount.c", "fuse/fuse-reader.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      # Keeps /dev/fuse descriptors across a restart outside systemd (fuse/fd-holder.c).
      "target_name": "regfs-fd-holder",
      "type": "executable",
      "sources": ["fuse/fd-holder.c", "fuse/fd-msg.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}

#!/usr/bin/env python3
"""Diff the file trees of two images: BuildKit's (a `docker save` archive, its layers applied in
order with their whiteouts) and builder's (a `--output type=tar` root file system).

    compare_trees.py [--mount-stub PATH]... BUILDKIT_SAVE.tar BUILDER_ROOTFS.tar
        -> differences on stdout, exit 1 if any

Compared for every path: its type, owner (uid:gid), mode (permission, setuid/setgid/sticky
bits), symlink target, device numbers, extended attributes and, for regular files, the contents
(sha256). A hard link is compared as the file it links to (each exporter may pick another name
of the same inode to hold the data).

What is not compared, and why (IGNORED_CONTENTS below lists the files, each with its reason):
  - modification and access times: every file a build writes carries the build's clock;
  - the contents of a few files that record that clock or depend on it (the owner, mode and
    presence of those files are still compared).
"""
import hashlib
import json
import re
import sys
import tarfile

# (pattern on the path, reason): contents not compared; the entry itself still is.
IGNORED_CONTENTS = [
    (r"^var/log/(apt/(history|term)\.log|apt/eipp\.log\.xz|dpkg\.log|alternatives\.log)$",
     "apt's and dpkg's logs: each line is stamped with the time of the install"),
    (r"^var/cache/ldconfig/aux-cache$",
     "ldconfig's cache of library stat data: holds the libraries' ctimes, i.e. the build's clock"),
    (r"^var/cache/apt/(src)?pkgcache\.bin$",
     "apt's binary caches: they record the mtimes of the package lists they were made from"),
    (r"\.pyc$",
     "compiled Python: its header holds the source file's mtime (set when pip or apt wrote it)"),
]
IGNORED_CONTENTS = [(re.compile(p), why) for p, why in IGNORED_CONTENTS]


def norm(name):
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def kind(member):
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr():
        return "char"
    if member.isblk():
        return "block"
    if member.isfifo():
        return "fifo"
    return "file"


def entry(tar, member, tree):
    k = kind(member)
    xattrs = {key: val for key, val in (member.pax_headers or {}).items()
              if key.startswith("SCHILY.xattr.")}
    e = {"type": k, "owner": f"{member.uid}:{member.gid}",
         "mode": oct(member.mode & 0o7777), "xattrs": xattrs}
    if k == "symlink":
        e["target"] = member.linkname
    elif k in ("char", "block"):
        e["dev"] = f"{member.devmajor},{member.devminor}"
    elif k == "file":
        h = hashlib.sha256()
        f = tar.extractfile(member)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        e["sha256"] = h.hexdigest()
        e["size"] = member.size
    elif k == "hardlink":
        target = tree.get(norm(member.linkname))
        if target is None:
            e["target"] = "(dangling) " + member.linkname
        else:
            # the same inode: the data and the ownership are the target's
            e = dict(target)
    return e


def apply_layer(tree, fileobj):
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            path = norm(member.name)
            base = path.rsplit("/", 1)[-1]
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if base == ".wh..wh..opq":
                prefix = parent + "/" if parent else ""
                for p in [p for p in tree if p.startswith(prefix)]:
                    del tree[p]
                continue
            if base.startswith(".wh."):
                gone = (parent + "/" if parent else "") + base[4:]
                for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                    del tree[p]
                continue
            if path == "":
                continue
            old = tree.get(path)
            if old is not None and old["type"] == "dir" and not member.isdir():
                for p in [p for p in tree if p.startswith(path + "/")]:
                    del tree[p]
            tree[path] = entry(tar, member, tree)


def docker_save_tree(path):
    tree = {}
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            apply_layer(tree, outer.extractfile(layer))
    return tree


def rootfs_tree(path):
    tree = {}
    with open(path, "rb") as f:
        apply_layer(tree, f)
    return tree


def ignored_reason(path):
    for pattern, why in IGNORED_CONTENTS:
        if pattern.search(path):
            return why
    return None


def is_mount_stub(path, entry, stubs):
    """An empty directory BuildKit before v0.9 (dockerd 20.10's) left where a RUN mount's target
    was missing, or a parent made for it; current BuildKit removes these after the step
    (executor.MountStubsCleaner), as builder does."""
    return entry["type"] == "dir" and any(s == path or s.startswith(path + "/") for s in stubs)


def diff(bk, b, stubs=(), stub_log=None):
    out = []
    for path in sorted(set(bk) | set(b)):
        x, y = bk.get(path), b.get(path)
        if x is None:
            out.append(f"only in builder:  /{path} ({y['type']} {y['owner']} {y['mode']})")
            continue
        if y is None:
            if is_mount_stub(path, x, stubs) and not any(p.startswith(path + "/") for p in b):
                if stub_log is not None:
                    stub_log.append(path)
                continue
            out.append(f"only in BuildKit: /{path} ({x['type']} {x['owner']} {x['mode']})")
            continue
        keys = set(x) | set(y)
        if ignored_reason(path):
            keys -= {"sha256", "size"}
        for key in sorted(keys):
            if x.get(key) != y.get(key):
                out.append(f"/{path}: {key}: BuildKit {x.get(key)!r}, builder {y.get(key)!r}")
    return out


def main():
    args = sys.argv[1:]
    stubs = []
    while len(args) > 2 and args[0] == "--mount-stub":
        stubs.append(norm(args[1]))
        args = args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    bk = docker_save_tree(args[0])
    b = rootfs_tree(args[1])
    stub_log = []
    lines = diff(bk, b, stubs, stub_log)
    for line in lines:
        print(line)
    for path in stub_log:
        print(f"(not counted) only in BuildKit: /{path}: an old BuildKit's mount point stub")
    print(f"{len(bk)} paths (BuildKit), {len(b)} paths (builder), {len(lines)} differences, "
          f"{len(stub_log)} mount point stubs", file=sys.stderr)
    sys.exit(1 if lines else 0)


if __name__ == "__main__":
    main()

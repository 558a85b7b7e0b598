//! A tree files are copied from: the build context (filtered by .dockerignore) or the root
//! filesystem of another stage or image. Gives COPY its source selection (with wildcards) and the
//! content checksum of exactly that selection, which is what a COPY's cache key depends on.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_store::{Digest, Hasher};

use crate::stat_cache::{StatCache, hash_file};
pub use crate::walk::Found;
use crate::walk::{cores, walk};
use builder_rootpath::{clean_rel, resolve_in_root};

pub struct SourceTree<'a> {
    root: PathBuf,
    ignore: Option<&'a IgnoreMatcher>,
    stat_cache: Option<&'a StatCache>,
}

/// One selected source: its path relative to the tree root, after resolving a symlink named
/// directly by the source (docker follows that one, inside the tree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The bytes the tree's directories list (a name need not be UTF-8).
    pub rel: PathBuf,
    pub host: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "{pattern:?}: no such file or directory in {what} (check the path, and that .dockerignore does not exclude it)"
    )]
    NotFound { pattern: String, what: &'static str },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("invalid source pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl<'a> SourceTree<'a> {
    pub fn new(root: &Path, ignore: Option<&'a IgnoreMatcher>) -> Self {
        SourceTree {
            root: root.to_path_buf(),
            ignore,
            stat_cache: None,
        }
    }

    /// Uses `cache` to skip re-reading files whose metadata did not change.
    pub fn with_stat_cache(mut self, cache: &'a StatCache) -> Self {
        self.stat_cache = Some(cache);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn what(&self) -> &'static str {
        if self.ignore.is_some() {
            "the build context"
        } else {
            "the source stage or image"
        }
    }

    pub fn is_excluded(&self, rel: &Path) -> bool {
        !rel.as_os_str().is_empty() && self.ignore.is_some_and(|m| m.is_excluded(rel))
    }

    /// Expands one COPY source (a path, possibly with `*`, `?`, `[...]` wildcards per component,
    /// and `**` for any number of directories). A pattern with a wildcard may match nothing.
    pub fn select(&self, pattern: &str) -> Result<Vec<Selected>, SourceError> {
        let clean = clean_rel(pattern);
        let has_wildcard = clean.contains(['*', '?', '[']);
        let mut rels = if has_wildcard {
            self.glob(pattern, &clean)?
        } else {
            vec![PathBuf::from(clean)]
        };
        // By bytes, as when they were strings (`Path`'s order compares components, which would
        // reorder `a-b` and `a/b` and so change existing checksums).
        rels.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
        let mut out = Vec::new();
        for rel in rels {
            if self.is_excluded(&rel) {
                continue;
            }
            let host = resolve_in_root(&self.root, &rel, true).map_err(io_err(&self.root))?;
            if fs::symlink_metadata(&host).is_err() {
                continue;
            }
            out.push(Selected { rel, host });
        }
        // BuildKit copies each source on its own and lets a wildcard match nothing (its
        // AllowEmptyWildcard): only a literal path that is missing is an error.
        if out.is_empty() && !has_wildcard {
            return Err(SourceError::NotFound {
                pattern: pattern.to_string(),
                what: self.what(),
            });
        }
        Ok(out)
    }

    fn glob(&self, original: &str, clean: &str) -> Result<Vec<PathBuf>, SourceError> {
        let mut current = vec![PathBuf::new()];
        let parts: Vec<&str> = clean.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == "**" {
                // Zero or more directories, as BuildKit's patterns: every path at or below
                // the current ones. Last in the pattern it names the directories themselves,
                // whose contents are copied anyway.
                if i + 1 < parts.len() {
                    current = self.descendants(current)?;
                }
                continue;
            }
            let pat = glob::Pattern::new(part).map_err(|e| SourceError::Pattern {
                pattern: original.to_string(),
                message: e.to_string(),
            })?;
            let mut next = Vec::new();
            for dir in &current {
                let host = resolve_in_root(&self.root, dir, true).map_err(io_err(&self.root))?;
                let Ok(entries) = fs::read_dir(&host) else {
                    continue;
                };
                for entry in entries {
                    let entry = entry.map_err(io_err(&host))?;
                    let name = entry.file_name();
                    // The pattern is Dockerfile text, so it can only name bytes that are not
                    // UTF-8 by a wildcard: the lossy form is used to decide the match, never
                    // as the path, which keeps the listed bytes.
                    if pat.matches_with(
                        &name.to_string_lossy(),
                        glob::MatchOptions {
                            require_literal_leading_dot: false,
                            ..Default::default()
                        },
                    ) {
                        next.push(dir.join(name));
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }

    /// `dirs` and every path below them (symlinks listed, never followed), each once.
    fn descendants(&self, dirs: Vec<PathBuf>) -> Result<Vec<PathBuf>, SourceError> {
        let mut out = Vec::new();
        let mut stack = dirs;
        while let Some(dir) = stack.pop() {
            let host = resolve_in_root(&self.root, &dir, false).map_err(io_err(&self.root))?;
            if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                for entry in fs::read_dir(&host).map_err(io_err(&host))? {
                    let entry = entry.map_err(io_err(&host))?;
                    stack.push(dir.join(entry.file_name()));
                }
            }
            out.push(dir);
        }
        out.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
        out.dedup();
        Ok(out)
    }

    /// Everything under a selected directory (not the directory itself), in sorted order, with
    /// .dockerignore exclusions applied. Symlinks are listed, never followed.
    pub fn walk(&self, dir: &Selected) -> Result<Vec<Found>, SourceError> {
        self.walk_excluding(dir, &IgnoreMatcher::empty())
    }

    /// [`walk`](Self::walk) less what `COPY --exclude` rules leave out (see `excludes`).
    pub fn walk_excluding(
        &self,
        dir: &Selected,
        exclude: &IgnoreMatcher,
    ) -> Result<Vec<Found>, SourceError> {
        let mut out = Vec::new();
        walk(&dir.host, &dir.rel, self.ignore, exclude, &mut |chunk| {
            out.append(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    /// Checksum of what a COPY of `patterns` would read: for each selected path, the names
    /// (relative to the selection), types, permission bits, link targets and file contents.
    /// Times and ownership are left out, so touching a file does not invalidate the cache.
    pub fn checksum(&self, patterns: &[String]) -> Result<Digest, SourceError> {
        self.checksum_excluding(patterns, &IgnoreMatcher::empty())
    }

    /// [`checksum`](Self::checksum) of what `COPY --exclude` leaves of the selection (see
    /// `excludes`): excluded files do not count, so editing one keeps the step cached.
    pub fn checksum_excluding(
        &self,
        patterns: &[String],
        exclude: &IgnoreMatcher,
    ) -> Result<Digest, SourceError> {
        let mut h = Hasher::new();
        for pattern in patterns {
            h.update(b"pattern\0");
            h.update(pattern.as_bytes());
            for sel in self.select(pattern)? {
                let meta = fs::symlink_metadata(&sel.host).map_err(io_err(&sel.host))?;
                let is_dir = meta.is_dir();
                if !is_dir && excludes(exclude, &sel.rel) {
                    continue;
                }
                self.add_to_checksum(&mut h, &mut vec![(sel.rel.clone(), sel.host.clone(), meta)])?;
                if is_dir {
                    // Chunk by chunk: the metadata of a whole large tree is never held at once.
                    walk(&sel.host, &sel.rel, self.ignore, exclude, &mut |chunk| {
                        self.add_to_checksum(&mut h, chunk)
                    })?;
                    if let Some(cache) = self.stat_cache {
                        cache.walked(&sel.host);
                    }
                }
            }
        }
        Ok(h.finish())
    }

    /// Hashes a batch of entries into a checksum, in their order, and empties the batch.
    fn add_to_checksum(&self, h: &mut Hasher, batch: &mut Vec<Found>) -> Result<(), SourceError> {
        let digests = file_digests(batch, self.stat_cache)?;
        for ((rel, host, meta), digest) in batch.iter().zip(digests) {
            hash_entry(h, rel, host, meta, digest)?;
        }
        batch.clear();
        Ok(())
    }
}

/// `COPY --exclude` patterns as rules (they were checked when the Dockerfile was converted).
pub fn exclude_rules(patterns: &[String]) -> Result<IgnoreMatcher, SourceError> {
    IgnoreMatcher::from_patterns(patterns).map_err(|e| SourceError::Pattern {
        pattern: patterns.get(e.line - 1).cloned().unwrap_or_default(),
        message: e.message,
    })
}

/// Whether `COPY --exclude` rules leave out a selected file itself (named, or matched by a
/// wildcard): it is matched by its name, so `COPY --exclude=*.md docs/* /d/` leaves out
/// `docs/x.md`. Below a selected directory the walk matches paths relative to that directory,
/// as BuildKit does (`--exclude=*/*.png` with source `.` drops `dir1/a.png`).
pub fn excludes(exclude: &IgnoreMatcher, selected_rel: &Path) -> bool {
    !exclude.is_empty()
        && exclude.is_excluded(selected_rel.file_name().unwrap_or(selected_rel.as_os_str()))
}

/// Content digests of the regular files among `entries` (None for the rest), in their order.
/// Digests the stat cache remembers are looked up first, on this thread; the files left are
/// hashed on every core: one SHA-256 stream runs at about the speed of one core, and a context is
/// usually many files. Largest first, so one big file does not finish alone at the end.
fn file_digests(
    entries: &[Found],
    stat_cache: Option<&StatCache>,
) -> Result<Vec<Option<Digest>>, SourceError> {
    let mut out = vec![None; entries.len()];
    let mut order = Vec::new();
    for (i, (_, host, meta)) in entries.iter().enumerate() {
        if !meta.file_type().is_file() {
            continue;
        }
        match stat_cache.and_then(|c| c.cached_digest(host, meta)) {
            Some(d) => out[i] = Some(d),
            None => order.push(i),
        }
    }
    if order.is_empty() {
        return Ok(out);
    }
    order.sort_by_key(|&i| std::cmp::Reverse(entries[i].2.len()));
    let digest_of = |i: usize| {
        let (_, host, meta) = &entries[i];
        match stat_cache {
            // Looked up above already.
            Some(cache) => cache.hash_and_learn(host, meta),
            None => hash_file(host),
        }
        .map_err(io_err(host))
    };
    let threads = cores().min(order.len());
    let next = AtomicUsize::new(0);
    let worker = || -> Result<Vec<(usize, Digest)>, SourceError> {
        let mut done = Vec::new();
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            done.push((i, digest_of(i)?));
        }
        Ok(done)
    };
    let results: Vec<_> = if threads <= 1 {
        vec![worker()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    for part in results {
        for (i, d) in part? {
            out[i] = Some(d);
        }
    }
    Ok(out)
}

fn hash_entry(
    h: &mut Hasher,
    rel: &Path,
    host: &Path,
    meta: &Metadata,
    digest: Option<Digest>,
) -> Result<(), SourceError> {
    h.update(b"\0entry\0");
    // The name's own bytes: for UTF-8 names the same bytes as when it was a string, so
    // existing cache keys stay valid.
    h.update(rel.as_os_str().as_bytes());
    h.update(&(meta.permissions().mode() & 0o7777).to_le_bytes());
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(host).map_err(io_err(host))?;
        h.update(b"link\0");
        h.update(target.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        h.update(b"dir\0");
    } else if let (true, Some(digest)) = (ft.is_file(), digest) {
        h.update(b"file\0");
        h.update(digest.as_bytes());
    } else {
        h.update(b"special\0");
        h.update(&meta.rdev().to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// Files are hashed on several threads; the checksum must still depend on names and
    /// contents in tree order, never on which thread finished first.
    #[test]
    fn parallel_checksum_is_stable_and_sees_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        for i in 0..300 {
            // Mixed sizes, so the largest-first order differs from the tree order.
            let body = vec![b'x'; (i * 7919) % 5000];
            fs::write(root.join(format!("a/b/f{i}")), body).unwrap();
        }
        std::os::unix::fs::symlink("b/f1", root.join("a/link")).unwrap();
        let tree = SourceTree::new(root, None);
        let pats = ["a".to_string()];
        let first = tree.checksum(&pats).unwrap();
        for _ in 0..5 {
            assert_eq!(tree.checksum(&pats).unwrap(), first);
        }
        let cache = StatCache::disabled();
        let cached = SourceTree::new(root, None).with_stat_cache(&cache);
        assert_eq!(cached.checksum(&pats).unwrap(), first);

        // Swapping two files' contents keeps the multiset of digests but not the checksum.
        let (p1, p2) = (root.join("a/b/f10"), root.join("a/b/f20"));
        let (c1, c2) = (fs::read(&p1).unwrap(), fs::read(&p2).unwrap());
        fs::write(&p1, &c2).unwrap();
        fs::write(&p2, &c1).unwrap();
        let swapped = tree.checksum(&pats).unwrap();
        assert_ne!(swapped, first);
        fs::write(&p1, &c1).unwrap();
        fs::write(&p2, &c2).unwrap();
        assert_eq!(tree.checksum(&pats).unwrap(), first);

        fs::write(root.join("a/b/f299"), b"changed").unwrap();
        assert_ne!(tree.checksum(&pats).unwrap(), first);
    }

    /// The plain recursive walk the batched one must agree with: sorted names, symlinks not
    /// followed, excluded entries left out, excluded directories entered only when an
    /// exception may re-include something below them.
    fn reference_walk(
        tree: &SourceTree,
        host: &Path,
        tree_rel: &[u8],
        sel_rel: &[u8],
        out: &mut Vec<Found>,
    ) {
        let mut names: Vec<_> = fs::read_dir(host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            // Joined as bytes, the way the strings were: the walk's paths must be these.
            let join = |base: &[u8]| {
                if base.is_empty() {
                    name.as_bytes().to_vec()
                } else {
                    [base, b"/", name.as_bytes()].concat()
                }
            };
            let (child_tree, child_sel) = (join(tree_rel), join(sel_rel));
            let child_host = host.join(&name);
            let meta = fs::symlink_metadata(&child_host).unwrap();
            let excluded = tree.is_excluded(Path::new(OsStr::from_bytes(&child_tree)));
            let is_dir = meta.is_dir();
            if !excluded {
                let sel = PathBuf::from(OsStr::from_bytes(&child_sel));
                out.push((sel, child_host.clone(), meta));
            }
            let reinclude = tree
                .ignore
                .is_some_and(|m| m.may_include_children(OsStr::from_bytes(&child_tree)));
            if is_dir && (!excluded || reinclude) {
                reference_walk(tree, &child_host, &child_tree, &child_sel, out);
            }
        }
    }

    /// Enough directories that the walk stats in several chunks on the stat threads (a chunk
    /// ends after CHUNK_DIRS directories), with exclusions, an exception below an excluded directory,
    /// and symlinks (listed, never followed).
    #[test]
    fn batched_walk_matches_a_plain_recursive_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..(crate::walk::CHUNK_DIRS * 5 + 8) {
            let sub = root.join(format!("src/d{d:03}"));
            fs::create_dir_all(sub.join("inner")).unwrap();
            for f in 0..3 {
                fs::write(sub.join(format!("f{f}.txt")), format!("{d} {f}")).unwrap();
            }
            fs::write(sub.join("inner/skip.log"), "log").unwrap();
            fs::write(sub.join("inner/keep.log"), "keep").unwrap();
        }
        fs::create_dir_all(root.join("src/zz-excluded/deep")).unwrap();
        fs::write(root.join("src/zz-excluded/deep/wanted"), "w").unwrap();
        fs::write(root.join("src/zz-excluded/unwanted"), "u").unwrap();
        std::os::unix::fs::symlink("../..", root.join("src/d000/up")).unwrap();
        // Names that are not UTF-8 (and a newline): walked, excluded and hashed as bytes.
        let odd = root.join(OsStr::from_bytes(b"src/d\xff\n"));
        fs::create_dir_all(&odd).unwrap();
        fs::write(odd.join(OsStr::from_bytes(b"f\xfe")), "odd").unwrap();
        fs::write(odd.join(OsStr::from_bytes(b"x\x80.log")), "odd log").unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("src/dangling")).unwrap();
        let ignore = IgnoreMatcher::parse(
            "**/*.log\n!**/keep.log\nsrc/zz-excluded\n!src/zz-excluded/deep/wanted\n",
        )
        .unwrap();
        for matcher in [None, Some(&ignore)] {
            let tree = SourceTree::new(root, matcher);
            let sel = tree.select("src").unwrap().remove(0);
            let walked = tree.walk(&sel).unwrap();
            let mut expected = Vec::new();
            reference_walk(&tree, &sel.host, b"src", b"", &mut expected);
            let rels = |v: &[Found]| {
                v.iter()
                    .map(|(r, h, _)| (r.clone(), h.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(rels(&walked), rels(&expected));
            let has = |p: &str| walked.iter().any(|(rel, _, _)| rel == Path::new(p));
            let has_bytes = |p: &[u8]| {
                walked
                    .iter()
                    .any(|(rel, _, _)| rel.as_os_str().as_bytes() == p)
            };
            assert!(has_bytes(b"d\xff\n/f\xfe"));
            assert_eq!(has_bytes(b"d\xff\n/x\x80.log"), matcher.is_none());
            assert!(has("d000/up") && has("dangling") && has("d167/f2.txt"));
            assert_eq!(has("d005/inner/skip.log"), matcher.is_none());
            assert!(has("d005/inner/keep.log"));
            assert!(has("zz-excluded/deep/wanted"));
            assert_eq!(has("zz-excluded/unwanted"), matcher.is_none());

            // The checksum, fed batch by batch, is the one of the whole list in order (the
            // format earlier versions stored cache keys with).
            let mut h = Hasher::new();
            h.update(b"pattern\0src");
            let sel_meta = fs::symlink_metadata(&sel.host).unwrap();
            hash_entry(&mut h, Path::new("src"), &sel.host, &sel_meta, None).unwrap();
            for (rel, host, meta) in &expected {
                let digest = meta.is_file().then(|| hash_file(host).unwrap());
                hash_entry(&mut h, rel, host, meta, digest).unwrap();
            }
            assert_eq!(tree.checksum(&["src".into()]).unwrap(), h.finish());
        }
    }

    /// A checksum that walked a directory lets the stat cache forget files deleted from it.
    #[test]
    fn the_stat_cache_forgets_files_deleted_from_a_walked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, cache_dir) = (dir.path().join("ctx"), dir.path().join("cache"));
        fs::create_dir_all(ctx.join("src")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let write_settled = |name: &str| {
            let path = ctx.join(name);
            fs::write(&path, name).unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        write_settled("src/a");
        write_settled("src/gone");
        let checksum_and_save = || {
            // ctime is now, so wait out the racy window before digests may be remembered.
            let cache = StatCache::load(&cache_dir, &ctx);
            SourceTree::new(&ctx, None)
                .with_stat_cache(&cache)
                .checksum(&["src".into()])
                .unwrap();
            cache.save().unwrap();
        };
        std::thread::sleep(std::time::Duration::from_millis(2100));
        checksum_and_save();
        let cached = |name: &str| {
            let meta = fs::metadata(ctx.join(name)).unwrap();
            StatCache::load(&cache_dir, &ctx).cached_digest(&ctx.join(name), &meta)
        };
        assert!(cached("src/gone").is_some());

        fs::remove_file(ctx.join("src/gone")).unwrap();
        write_settled("src/new");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        checksum_and_save();
        assert!(cached("src/a").is_some() && cached("src/new").is_some());
        let file = fs::read_dir(&cache_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let bytes = fs::read(file).unwrap();
        assert!(
            !bytes.windows(b"src/gone".len()).any(|w| w == b"src/gone"),
            "the deleted file's record was dropped"
        );
    }
}

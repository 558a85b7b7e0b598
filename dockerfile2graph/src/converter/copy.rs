//! COPY and ADD (BuildKit's `convert_copy`): sources from the context, a stage, an image,
//! a named context, a URL or a git repository, turned into file actions.

use super::*;

impl<'a> Converter<'a> {
    /// What `--from=NAME` reads: a stage, a `--build-context` directory (then `true`: its files
    /// are host files, owned by root in the image, as the build context's are), or an image.
    /// `reader` is what reads it, for the error when NAME is a stage defined later.
    pub(super) fn source_for_from(
        &mut self,
        from: &str,
        st: &StageBuild,
        line: usize,
        reader: FromReader<'_>,
    ) -> Result<(VertexId, bool), ConvertError> {
        if let Some(index) = self.stage_by_ref(from, st.index) {
            match self.stage_override(index) {
                Some((name, BuildContext::Dir(_))) => {
                    return Ok((self.named_context_vertex(name), true));
                }
                Some(_) => {
                    let out = self.overridden_stage_output(index, line)?;
                    if let Some(out) = out {
                        return Ok((out.vertex, false));
                    }
                }
                None => return Ok((self.dependency(index)?.vertex, false)),
            }
        }
        if let Some(BuildContext::Dir(_)) = self.options.build_contexts.get(from) {
            return Ok((self.named_context_vertex(from), true));
        }
        if self
            .dockerfile
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(&from.to_lowercase()))
        {
            return Err(self.error(line, reader.later_stage_error(from, &st.name)));
        }
        let image = self.resolve_image(from, line, &st.spec.platform)?;
        Ok((self.image_vertex(&image), false))
    }

    pub(super) fn dispatch_copy(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
        copy: &Copy,
        history: String,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        let (source, from_context) = match &copy.from {
            Some(from) => self.source_for_from(from, st, line, FromReader::Copy)?,
            None => (self.context_vertex(), true),
        };
        let chmod = parse_chmod(copy.chmod.as_deref()).map_err(|e| self.error(line, e))?;
        let actions = copy_actions(
            &st.spec.working_dir,
            &copy.sources,
            &copy.dest,
            &copy.heredocs,
            CopyFlags {
                chown: copy.chown.clone(),
                chmod,
                unpack: false,
                exclude: copy.exclude.clone(),
                from_context,
                parents: copy.parents,
            },
        )
        .map_err(|e| self.error(line, e))?;
        let inputs = if copy.sources.is_empty() {
            vec![]
        } else {
            vec![source]
        };
        self.commit_copy(
            st,
            inst,
            actions,
            inputs,
            history,
            copy.link,
            copy.chown.as_deref(),
        )
    }

    /// The file op of a COPY or ADD, once `--link` and `--chown` agree (see `check_link_chown`).
    #[allow(clippy::too_many_arguments)]
    fn commit_copy(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
        actions: Vec<FileAction>,
        inputs: Vec<VertexId>,
        history: String,
        link: bool,
        chown: Option<&str>,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        check_link_chown(link, chown).map_err(|e| self.error(line, e))?;
        let name = st.step_name(&self.display_text(st, inst));
        st.commit_file(
            &mut self.graph,
            actions,
            inputs,
            history,
            (name, inst),
            link,
        );
        Ok(())
    }

    pub(super) fn dispatch_add(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
        add: &Add,
        history: String,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        if add.sources.iter().any(|s| is_git_source(s)) {
            return self.dispatch_add_git(st, inst, add, history);
        }
        let (urls, local): (Vec<&String>, Vec<&String>) =
            add.sources.iter().partition(|s| is_url(s));
        if add.checksum.is_some() && (urls.len() != 1 || !local.is_empty()) {
            return Err(self.error(
                line,
                "ADD --checksum needs exactly one source, and it must be a URL",
            ));
        }
        let local: Vec<String> = local.into_iter().cloned().collect();
        let chmod = parse_chmod(add.chmod.as_deref()).map_err(|e| self.error(line, e))?;
        // Counted together: several sources of any kind need a directory destination.
        let mut actions = copy_actions(
            &st.spec.working_dir,
            &add.sources,
            &add.dest,
            &add.heredocs,
            CopyFlags {
                chown: add.chown.clone(),
                chmod: chmod.clone(),
                // Local archives are extracted unless `--unpack=false`.
                unpack: add.unpack.unwrap_or(true),
                exclude: add.exclude.clone(),
                from_context: true,
                parents: false,
            },
        )
        .map_err(|e| self.error(line, e))?;
        // copy_actions made one Copy of every source from the context: keep the local ones
        // there and turn each URL into a download.
        let mut fetched = Vec::new();
        for url in &urls {
            let file = self
                .resolver
                .fetch_url(url)
                .map_err(|e| self.source_error(line, e))?;
            if let Some(expected) = &add.checksum
                && expected.as_str() != file.digest.to_string()
            {
                return Err(self.source_error(
                    line,
                    format!("ADD {url}: checksum mismatch: --checksum={expected}, but the download is {}", file.digest),
                ));
            }
            fetched.push(file);
        }
        let mut inputs = Vec::new();
        for action in &mut actions {
            if let FileAction::Copy(copy) = action {
                if !local.is_empty() {
                    inputs.push(self.context_vertex());
                }
                copy.sources = local.clone();
            }
        }
        actions.retain(|a| !matches!(a, FileAction::Copy(c) if c.sources.is_empty()));
        for file in fetched {
            actions.push(fetched_action(
                &st.spec.working_dir,
                &add.dest,
                add.sources.len() + add.heredocs.len() > 1,
                file,
                chmod.as_ref(),
                add.chown.clone(),
                // Downloads are extracted only with `--unpack=true`.
                add.unpack == Some(true),
            ));
        }
        self.commit_copy(
            st,
            inst,
            actions,
            inputs,
            history,
            add.link,
            add.chown.as_deref(),
        )
    }

    /// `ADD <git URL> DEST`: the checkout's files (its `.git` only with `--keep-git-dir`) are
    /// copied into DEST, read like a `--build-context` directory, so the step's key is their
    /// content: a rebuild of the same commit is cached. `--checksum` must be the commit the
    /// ref resolves to (a prefix of it), as in BuildKit.
    pub(super) fn dispatch_add_git(
        &mut self,
        st: &mut StageBuild,
        inst: &Instruction,
        add: &Add,
        history: String,
    ) -> Result<(), ConvertError> {
        let line = inst.location.start_line;
        let [url] = add.sources.as_slice() else {
            return Err(self.error(line, "ADD of a git repository takes exactly one source"));
        };
        let checkout = self
            .resolver
            .fetch_git(url, add.keep_git_dir)
            .map_err(|e| self.source_error(line, e))?;
        if let Some(expected) = &add.checksum
            && !checkout.commit.starts_with(expected.as_str())
        {
            return Err(self.source_error(
                line,
                format!(
                    "ADD {url}: expected checksum to match {expected}, got {}",
                    checkout.commit
                ),
            ));
        }
        let name = format!(
            "git {url}@{}{}",
            checkout.commit,
            if add.keep_git_dir { " +.git" } else { "" }
        );
        self.git_contexts.insert(name.clone(), checkout.dir);
        let chmod = parse_chmod(add.chmod.as_deref()).map_err(|e| self.error(line, e))?;
        let actions = copy_actions(
            &st.spec.working_dir,
            &[".".to_string()],
            &add.dest,
            &[],
            CopyFlags {
                chown: add.chown.clone(),
                chmod,
                unpack: false,
                exclude: add.exclude.clone(),
                from_context: true,
                parents: false,
            },
        )
        .map_err(|e| self.error(line, e))?;
        let input = self.named_context_vertex(&name);
        self.commit_copy(
            st,
            inst,
            actions,
            vec![input],
            history,
            add.link,
            add.chown.as_deref(),
        )
    }

    /// `FROM NAME` where NAME is a `--build-context` directory: as in BuildKit, the directory's
    /// files are the stage's root filesystem (with an empty image config, as `FROM scratch`).
    pub(super) fn directory_root(
        &mut self,
        name: &str,
        line: usize,
    ) -> Result<VertexId, ConvertError> {
        let scratch = self.graph.add(Vertex {
            op: Op::Scratch,
            inputs: vec![],
            name: "scratch".into(),
            lines: None,
        });
        let actions = copy_actions(
            "/",
            &[".".to_string()],
            "/",
            &[],
            CopyFlags {
                chown: None,
                chmod: None,
                unpack: false,
                exclude: Vec::new(),
                from_context: true,
                parents: false,
            },
        )
        .map_err(|e| self.error(line, e))?;
        let context = self.named_context_vertex(name);
        Ok(self.graph.add(Vertex {
            op: Op::File(FileOp {
                actions,
                linked: false,
            }),
            inputs: vec![scratch, context],
            name: format!("[context {name}] the stage's root filesystem"),
            lines: Some((line, line)),
        }))
    }
}

/// A `--link` step does not see the files below it, so `--chown` cannot look names up in the
/// image's /etc/passwd: only numeric ids work.
pub(super) fn check_link_chown(link: bool, chown: Option<&str>) -> Result<(), String> {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match chown {
        Some(spec) if link && !spec.split(':').all(numeric) => Err(format!(
            "--link with --chown={spec}: a linked copy cannot see the image's user database; use numeric ids (e.g. --chown=1000:1000) or drop --link"
        )),
        _ => Ok(()),
    }
}

pub(super) struct CopyFlags {
    pub(super) chown: Option<String>,
    pub(super) chmod: Option<Chmod>,
    pub(super) unpack: bool,
    pub(super) exclude: Vec<String>,
    pub(super) from_context: bool,
    pub(super) parents: bool,
}

/// COPY/ADD sources (from input 1) and heredocs become file actions with an absolute destination.
pub(super) fn copy_actions(
    workdir: &str,
    sources: &[String],
    dest: &str,
    heredocs: &[builder_frontend::Heredoc],
    flags: CopyFlags,
) -> Result<Vec<FileAction>, String> {
    let count = sources.len() + heredocs.len();
    // With --parents every source lands below the destination, keeping its path.
    // `.` (the working directory) names a directory too, as in BuildKit: it matters where
    // nothing exists yet to tell, as in the empty root of a `COPY --link`.
    // Several sources with a destination without a trailing `/` are no error in BuildKit: each
    // source lands in the destination when it is a directory by then (decided when copying),
    // else at it. Heredocs are placed here, so for them several still mean a directory.
    let dest_is_dir = dest == "." || dest.is_empty() || dest.ends_with('/') || flags.parents;
    let docs_dest_is_dir = dest_is_dir || count > 1;
    if let Err(e) = IgnoreMatcher::from_patterns(&flags.exclude) {
        return Err(format!("--exclude: pattern {}: {}", e.line, e.message));
    }
    if !heredocs.is_empty() && count > 1 && !dest.ends_with('/') {
        return Err(format!(
            "when using COPY/ADD with more than one source file, the destination must be a directory and end with a /: {dest:?}"
        ));
    }
    let abs_dest = {
        let joined = join_path(workdir, dest);
        if dest.ends_with('/') && !joined.ends_with('/') {
            format!("{joined}/")
        } else {
            joined
        }
    };
    let mut actions = Vec::new();
    for doc in heredocs {
        let path = if docs_dest_is_dir {
            join_path(&abs_dest, &doc.name)
        } else {
            abs_dest.clone()
        };
        let data = if doc.chomp_tabs {
            doc.content
                .lines()
                .map(|l| l.trim_start_matches('\t'))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        } else {
            doc.content.clone()
        };
        actions.push(FileAction::Mkfile {
            path,
            mode: flags
                .chmod
                .as_ref()
                .map_or(0o644, |c| c.apply(0o644, false)),
            data,
            owner: flags.chown.clone(),
            parent_mode: octal_parent_mode(flags.chmod.as_ref()),
        });
    }
    if !sources.is_empty() {
        actions.push(FileAction::Copy(CopyAction {
            source_input: 1,
            sources: sources.to_vec(),
            dest: abs_dest,
            dest_is_dir,
            chown: flags.chown,
            chmod: flags.chmod,
            unpack_archives: flags.unpack,
            exclude: flags.exclude,
            from_context: flags.from_context,
            parents: flags.parents,
        }));
    }
    Ok(actions)
}

pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Git sources as BuildKit recognises them: `git@host:repo`, `git://...`, or a URL ending in
/// `.git` (with or without a `#ref` fragment).
pub(super) fn is_git_source(s: &str) -> bool {
    let without_fragment = s.split('#').next().unwrap_or(s);
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s) && without_fragment.ends_with(".git"))
}

/// The action of one `ADD <url>` source: the downloaded file lands at `dest`, or in it under the
/// file's name when `dest` is a directory. As with docker, it is mode 0600 unless `--chmod`
/// says otherwise, and owned by root unless `--chown` does. With `unpack` (`--unpack=true`)
/// a tar archive is extracted into `dest` instead, as BuildKit does.
pub(super) fn fetched_action(
    workdir: &str,
    dest: &str,
    several_sources: bool,
    file: RemoteFile,
    chmod: Option<&Chmod>,
    chown: Option<String>,
    unpack: bool,
) -> FileAction {
    let abs_dest = join_path(workdir, dest);
    let unpack_into = unpack.then(|| abs_dest.clone());
    let path = if dest.ends_with('/') || several_sources {
        join_path(&abs_dest, &file.filename)
    } else {
        abs_dest
    };
    FileAction::Fetched {
        path,
        blob: file.digest,
        mode: chmod.map_or(0o600, |c| c.apply(0o600, false)),
        mtime: file.mtime,
        owner: chown,
        unpack_into,
        unpack_chmod: if unpack { chmod.cloned() } else { None },
        parent_mode: octal_parent_mode(chmod),
    }
}

/// BuildKit (fsutil's copy) makes the missing parents of a copied file or download with an
/// octal `--chmod`'s permission bits; a symbolic one leaves them 0755.
pub(super) fn octal_parent_mode(chmod: Option<&Chmod>) -> Option<u32> {
    match chmod {
        Some(Chmod::Octal(mode)) => Some(mode & 0o777),
        _ => None,
    }
}

/// An empty `--chmod=` is no chmod, as in BuildKit.
pub(super) fn parse_chmod(chmod: Option<&str>) -> Result<Option<Chmod>, String> {
    chmod
        .filter(|c| !c.is_empty())
        .map(Chmod::parse)
        .transpose()
}

/// The history text of a COPY or ADD (see [`history_text`]).
pub(super) fn copy_history(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[String],
    heredocs: &[builder_frontend::Heredoc],
    dest: &str,
) -> String {
    let mut text = keyword.to_string();
    if parents {
        text.push_str(" --parents");
    }
    if let Some(chown) = chown.filter(|c| !c.is_empty()) {
        text.push_str(&format!(" --chown={chown}"));
    }
    if let Some(chmod) = chmod.filter(|c| !c.is_empty()) {
        text.push_str(&format!(" --chmod={chmod}"));
    }
    for src in sources {
        text.push_str(&format!(" {src}"));
    }
    for doc in heredocs {
        text.push_str(&format!(" <<{}", doc.name));
    }
    format!("{text} {dest} # buildkit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use builder_graph::chmod::Chmod;

    #[test]
    fn chmod_is_octal_or_symbolic() {
        assert_eq!(parse_chmod(Some("755")).unwrap(), Some(Chmod::Octal(0o755)));
        assert!(matches!(
            parse_chmod(Some("u+x")).unwrap(),
            Some(Chmod::Symbolic(_))
        ));
        assert!(parse_chmod(Some("u+q")).is_err());
        assert_eq!(parse_chmod(None).unwrap(), None);
    }
}

/// What reads a `--from` source: the error for a stage defined later is worded as BuildKit's
/// for each (users search for these).
#[derive(Clone, Copy)]
pub(super) enum FromReader<'t> {
    Copy,
    /// A RUN mount, with its target.
    Mount(&'t str),
}

impl FromReader<'_> {
    fn later_stage_error(self, from: &str, stage: &str) -> String {
        match self {
            FromReader::Copy => format!(
                "cannot copy from stage {from:?}, it needs to be defined before current stage {stage:?}"
            ),
            FromReader::Mount(target) => format!(
                "cannot mount from stage {from:?} to {target:?}, stage needs to be defined before current command"
            ),
        }
    }
}

//! The file op: COPY, ADD and WORKDIR actions applied to a writable view of the step's base.

use super::*;

impl Solver<'_> {
    pub(super) fn run_file(
        &self,
        index: usize,
        v: &Vertex,
        op: &FileOp,
        base: &[LayerRef],
        inputs: &[Solved],
    ) -> Result<Option<LayerRef>, SolveError> {
        // A copy or layer write that stopped because the build was cancelled is not a failed
        // step: the build ends as cancelled (exit 130), and `active` is removed on return.
        let err = |e: &dyn std::fmt::Display| {
            if crate::cancel::is_cancelled() {
                SolveError::Cancelled
            } else {
                self.step_error(v, e)
            }
        };
        let active = self.prepare(base).map_err(|e| err(&e))?;
        let root = active.rootfs().to_path_buf();
        let upper = active.upper_for_direct_writes().map(Path::to_path_buf);
        for action in &op.actions {
            self.apply_action(action, &root, upper.as_deref(), inputs)
                .map_err(|e| err(&e))?;
        }
        // Locked until the layer is stored: a concurrent build's sweep leaves it alone.
        let diff = active.finish_locked().map_err(|e| err(&e))?;
        self.commit_diff(index, diff.path()).map_err(|e| err(&e))
    }

    pub(super) fn apply_action(
        &self,
        action: &FileAction,
        root: &Path,
        upper: Option<&Path>,
        inputs: &[Solved],
    ) -> Result<(), CopyError> {
        let owner = |spec: &Option<String>| -> Result<Option<Owner>, CopyError> {
            spec.as_deref()
                .map(|s| resolve_owner(root, s).map_err(CopyError::Invalid))
                .transpose()
        };
        match action {
            FileAction::Mkdir {
                path,
                mode,
                owner: o,
            } => {
                let existed = builder_rootpath::resolve_in_root(root, path, true)
                    .map(|p| p.is_dir())
                    .unwrap_or(false);
                let dir = copy::ensure_dir(
                    root,
                    path,
                    Attributes {
                        owner: owner(o)?,
                        chmod: None,
                        reset_owner: true,
                    },
                )?;
                if !existed {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(*mode)).map_err(|e| {
                        CopyError::Io {
                            path: dir.display().to_string(),
                            source: e,
                        }
                    })?;
                }
                Ok(())
            }
            FileAction::Mkfile {
                path,
                mode,
                data,
                owner: o,
                parent_mode,
            } => copy::make_file(
                root,
                path,
                &mut data.as_bytes(),
                *mode,
                owner(o)?.unwrap_or(Owner { uid: 0, gid: 0 }),
                None,
                *parent_mode,
            ),
            FileAction::Fetched {
                path,
                blob,
                mode,
                mtime,
                owner: o,
                unpack_into,
                unpack_chmod,
                parent_mode,
            } => {
                if let Some(dir) = unpack_into {
                    let attrs = Attributes {
                        owner: owner(o)?,
                        chmod: unpack_chmod.as_ref(),
                        reset_owner: false,
                    };
                    let file = self.store.blobs().path(blob);
                    if copy::unpack_file(&file, root, dir, attrs)? {
                        return Ok(());
                    }
                }
                let mut content = self.store.blobs().open(blob).map_err(|e| {
                    CopyError::Invalid(format!(
                        "the downloaded file {blob} is gone from the store: {e}"
                    ))
                })?;
                copy::make_file(
                    root,
                    path,
                    &mut content,
                    *mode,
                    owner(o)?.unwrap_or(Owner { uid: 0, gid: 0 }),
                    *mtime,
                    *parent_mode,
                )
            }
            FileAction::Copy(c) => {
                let attrs = Attributes {
                    owner: owner(&c.chown)?,
                    chmod: c.chmod.as_ref(),
                    reset_owner: c.from_context,
                };
                match inputs.get(c.source_input).map(|s| &s.output) {
                    Some(Output::Context(name)) => {
                        let tree = self.context_tree(name.as_deref()).ok_or_else(|| {
                            CopyError::Invalid("this step reads the build context, but no context directory was given".into())
                        })?;
                        copy::copy_with_upper(&tree, c, root, upper, attrs)
                    }
                    Some(Output::Rootfs(layers)) => {
                        let view = self.prepare(layers).map_err(CopyError::Invalid)?;
                        let tree = SourceTree::new(view.rootfs(), None);
                        copy::copy_with_upper(&tree, c, root, upper, attrs)
                    }
                    None => Err(CopyError::Invalid("copy source is missing".into())),
                }
            }
        }
    }
}

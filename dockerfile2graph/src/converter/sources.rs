//! The graph's input vertices: the build context, named contexts and base images.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn context_vertex(&mut self) -> VertexId {
        *self.context.get_or_insert_with(|| {
            self.graph.add(Vertex {
                op: Op::Context,
                inputs: vec![],
                name: "[internal] load build context".into(),
                lines: None,
            })
        })
    }

    pub(super) fn image_vertex(&mut self, image: &ResolvedImage) -> VertexId {
        if let Some(v) = self.images.get(&image.reference) {
            return *v;
        }
        let v = self.graph.add(Vertex {
            op: Op::Image(ImageSource {
                reference: image.reference.clone(),
                manifest_digest: image.manifest_digest,
                layers: image.spec.base_layers.clone(),
            }),
            inputs: vec![],
            name: format!("[internal] load {}", image.reference),
            lines: None,
        });
        self.images.insert(image.reference.clone(), v);
        v
    }

    /// Whether `name` is given as `--build-context NAME=docker-image://scratch`: no image to
    /// pull, the empty file system (BuildKit resolves it to its scratch state).
    pub(super) fn names_scratch(&self, name: &str) -> bool {
        matches!(
            self.options.build_contexts.get(name),
            Some(BuildContext::Image(reference)) if reference == "scratch"
        )
    }

    pub(super) fn resolve_image(
        &self,
        reference: &str,
        line: usize,
        platform: &Platform,
    ) -> Result<ResolvedImage, ConvertError> {
        // `--build-context NAME=docker-image://REF` puts REF where the Dockerfile says NAME.
        let reference = match self.options.build_contexts.get(reference) {
            Some(BuildContext::Image(other)) => other.as_str(),
            Some(BuildContext::Dir(dir)) => {
                return Err(self.error(
                    line,
                    format!(
                        "{reference:?} is a local directory build context ({}): use it with COPY --from={reference} or RUN --mount=from={reference}; FROM needs an image or a stage",
                        dir.display()
                    ),
                ));
            }
            None => reference,
        };
        self.resolver
            .resolve(reference, platform)
            .map_err(|e| self.source_error(line, e))
    }

    /// The vertex of a `--build-context` directory, made once per name.
    pub(super) fn named_context_vertex(&mut self, name: &str) -> VertexId {
        if let Some(v) = self.named_contexts.get(name) {
            return *v;
        }
        let v = self.graph.add(Vertex {
            op: Op::NamedContext {
                name: name.to_string(),
            },
            inputs: vec![],
            name: format!("[context {name}] load from client"),
            lines: None,
        });
        self.named_contexts.insert(name.to_string(), v);
        v
    }
}

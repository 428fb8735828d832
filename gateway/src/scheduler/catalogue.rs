//! The live catalogue of images: labels parsed into specs, kept current from engine events.
//!
//! Each refresh lists the labelled images and rebuilds the whole table; it is cheap (a few
//! dozen images) and needs no incremental bookkeeping that could drift from the engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::images::{ImageSpec, LabelError, parse_labels, repo_name};
use crate::metrics::Metrics;
use crate::runtime::ImageInfo;

/// One image as Orca sees it: usable, or disabled with the reasons.
#[derive(Debug, Clone)]
pub struct CatalogueRow {
    /// The name users ask for (`orca.name`, or the repository name).
    pub name: String,
    /// The tag it was found under, or the short id for an untagged image.
    pub reference: String,
    /// Content id.
    pub image_id: String,
    /// The parsed spec, or every label error.
    pub spec: Result<Arc<ImageSpec>, Vec<LabelError>>,
    /// Another image with the same name that is used instead of this one.
    pub shadowed_by: Option<String>,
}

/// The result of looking an image name up.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Usable.
    Ready(Arc<ImageSpec>),
    /// Known but disabled by bad labels; the text lists the errors.
    Disabled(String),
    /// No image of that name.
    Unknown,
}

/// The catalogue: rows for `orca images`, and a name index for placement.
#[derive(Debug, Default)]
pub struct Catalogue {
    table: RwLock<Arc<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<CatalogueRow>,
    by_name: HashMap<String, usize>,
}

impl Catalogue {
    /// Replaces the table with one built from `images`; returns the rows.
    pub fn replace(&self, images: &[ImageInfo], metrics: &Metrics) -> Vec<CatalogueRow> {
        let table = Arc::new(build(images));
        metrics.image_label_errors.reset();
        let (mut ok, mut bad) = (0, 0);
        for row in &table.rows {
            match &row.spec {
                Ok(_) => ok += 1,
                Err(errors) => {
                    bad += 1;
                    metrics
                        .image_label_errors
                        .with_label_values(&[row.name.as_str()])
                        .set(errors.len() as i64);
                }
            }
        }
        metrics.images.with_label_values(&["ok"]).set(ok);
        metrics.images.with_label_values(&["error"]).set(bad);
        let rows = table.rows.clone();
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
        rows
    }

    /// Looks a name up (case-insensitively, as DNS does).
    pub fn lookup(&self, name: &str) -> Lookup {
        let table = self.snapshot();
        // Names are mostly asked in lower case already (the router lowers them): no copy then.
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(name.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        match table.by_name.get(name.as_ref()).map(|&i| &table.rows[i]) {
            Some(CatalogueRow { spec: Ok(spec), .. }) => Lookup::Ready(spec.clone()),
            Some(CatalogueRow {
                spec: Err(errors), ..
            }) => Lookup::Disabled(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => Lookup::Unknown,
        }
    }

    /// Every row, sorted by name.
    pub fn rows(&self) -> Vec<CatalogueRow> {
        self.snapshot().rows.clone()
    }

    /// Every usable spec.
    pub fn specs(&self) -> Vec<Arc<ImageSpec>> {
        let table = self.snapshot();
        table
            .by_name
            .values()
            .filter_map(|&i| table.rows[i].spec.as_ref().ok().cloned())
            .collect()
    }

    fn snapshot(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Builds the table: one row per distinct image under a name; when two different images claim
/// one name, the newest wins and the others are listed as shadowed by it.
fn build(images: &[ImageInfo]) -> Table {
    let mut groups: BTreeMap<String, Vec<(i64, CatalogueRow)>> = BTreeMap::new();
    for image in images {
        // Untagged (dangling) images are what a rebuild leaves behind: never offered.
        let refs = image
            .repo_tags
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty() && *t != "<none>:<none>");
        for reference in refs {
            let spec = parse_labels(&image.id, reference, &image.labels).map(Arc::new);
            let name = match &spec {
                Ok(s) => s.name.clone(),
                Err(_) => fallback_name(reference, image),
            };
            let group = groups.entry(name.clone()).or_default();
            // The same image under another tag: one row is enough.
            if group.iter().any(|(_, r)| r.image_id == image.id) {
                continue;
            }
            let reference = reference.to_string();
            let row = CatalogueRow {
                name,
                reference,
                image_id: image.id.clone(),
                spec,
                shadowed_by: None,
            };
            group.push((image.created, row));
        }
    }
    let mut rows = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|(ca, a), (cb, b)| cb.cmp(ca).then_with(|| a.reference.cmp(&b.reference)));
        let winner = group[0].1.reference.clone();
        for (i, (_, mut row)) in group.into_iter().enumerate() {
            if i > 0 {
                row.shadowed_by = Some(winner.clone());
            }
            rows.push(row);
        }
    }
    let by_name = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.shadowed_by.is_none())
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    Table { rows, by_name }
}

/// A name for an image whose labels did not parse, so its errors can be shown and looked up.
fn fallback_name(reference: &str, image: &ImageInfo) -> String {
    match image.labels.get("orca.name") {
        Some(n) => n.to_ascii_lowercase(),
        None => repo_name(reference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], created: i64, labels: &[(&str, &str)]) -> ImageInfo {
        ImageInfo {
            id: id.to_string(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created,
        }
    }

    #[test]
    fn newest_image_wins_a_name_and_the_other_is_shadowed() {
        let c = Catalogue::default();
        let m = Metrics::new();
        let rows = c.replace(
            &[
                image("sha256:aaa", &["web:old"], 1, &[("orca.kind", "web")]),
                image(
                    "sha256:bbb",
                    &["web:new", "web:latest"],
                    2,
                    &[("orca.kind", "web")],
                ),
            ],
            &m,
        );
        let Lookup::Ready(spec) = c.lookup("WEB") else {
            panic!("web should be usable")
        };
        assert_eq!(spec.image_id, "sha256:bbb");
        assert_eq!(rows.len(), 2, "{rows:?}");
        let shadowed = rows.iter().find(|r| r.image_id == "sha256:aaa").unwrap();
        assert_eq!(shadowed.shadowed_by.as_deref(), Some("web:new"));
    }

    #[test]
    fn bad_labels_disable_only_that_image() {
        let c = Catalogue::default();
        let m = Metrics::new();
        c.replace(
            &[
                image("sha256:a", &["good:1"], 1, &[("orca.kind", "web")]),
                image(
                    "sha256:b",
                    &["bad:1"],
                    1,
                    &[("orca.kind", "web"), ("orca.users.total", "zero")],
                ),
            ],
            &m,
        );
        assert!(matches!(c.lookup("good"), Lookup::Ready(_)));
        match c.lookup("bad") {
            Lookup::Disabled(why) => assert!(why.contains("orca.users.total"), "{why}"),
            other => panic!("bad should be disabled, got {other:?}"),
        }
        assert!(matches!(c.lookup("nope"), Lookup::Unknown));
        assert_eq!(m.images.with_label_values(&["error"]).get(), 1);
        assert_eq!(m.image_label_errors.with_label_values(&["bad"]).get(), 1);
    }

    #[test]
    fn removed_images_disappear_on_refresh() {
        let c = Catalogue::default();
        let m = Metrics::new();
        c.replace(
            &[image("sha256:a", &["web:1"], 1, &[("orca.kind", "web")])],
            &m,
        );
        assert!(matches!(c.lookup("web"), Lookup::Ready(_)));
        c.replace(&[], &m);
        assert!(matches!(c.lookup("web"), Lookup::Unknown));
    }
}

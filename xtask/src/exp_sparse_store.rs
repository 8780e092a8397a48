//! `sparse-mnist`'s training checkpoints (issue 20): the folder `OUT/sparse-mnist/training`
//! keeps every finished training stage (`<stage>.bin`, written atomically, see
//! `sparse_bp::paper::MnistSetup::train_resumable`) and an `identity.json` that says what
//! they were trained on. A restarted run with the same identity loads the finished stages
//! instead of training them (and says so on stderr); a different identity is an error that
//! names every differing field. The folder is kept after a complete run, like the SNN
//! checkpoints: a run restarted after its training reloads, it does not retrain.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sparse_bp::paper::{MnistSetup, StageStore};

use crate::attack_log::fingerprint;
use sparse_bp::{Result as SbpResult, SparseBpError};

/// Version of the folder's layout and of [`Identity`] (1: `<stage>.bin` of kind
/// `sbp-train-stage` v1 beside `identity.json`).
pub const STORE_FORMAT: u32 = 1;

/// The identity file's name in the folder.
pub const IDENTITY_FILE: &str = "identity.json";

/// What the stored stages were trained on: a store is used only by a run with the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// [`STORE_FORMAT`].
    pub format: u32,
    /// Run-size preset (`quick`, `medium`, `full`).
    pub preset: String,
    /// The run's `--seed`.
    pub seed: u64,
    /// Training images.
    pub n_train: usize,
    /// Held-out images.
    pub n_val: usize,
    /// SHA-256 of the training images' pixels (bytes) and labels.
    pub train_data: String,
    /// SHA-256 of the held-out images' pixels and labels.
    pub held_out_data: String,
    /// SHA-256 of the recipe (the preset's `MnistSetup`, as JSON): epochs, sizes, penalties.
    pub recipe: String,
}

impl Identity {
    /// The identity of a run of `setup` with `seed` on the given training and held-out images
    /// (`(pixels, labels)`, row-major bytes as in the IDX files).
    pub fn new(setup: &MnistSetup, seed: u64, train: (&[u8], &[u8]), held_out: (&[u8], &[u8])) -> Self {
        let hash = |(px, labels): (&[u8], &[u8])| fingerprint([px, labels]);
        let recipe = serde_json::to_string(setup).unwrap_or_default();
        Self {
            format: STORE_FORMAT,
            preset: setup.scale.name().to_owned(),
            seed,
            n_train: setup.sizes.n_train,
            n_val: setup.n_val,
            train_data: hash(train),
            held_out_data: hash(held_out),
            recipe: fingerprint([recipe.as_bytes()]),
        }
    }

    /// `(field, stored, this run)` of every field that differs from `other` (`self` stored).
    pub fn differences(&self, other: &Identity) -> Vec<(&'static str, String, String)> {
        let mut d = Vec::new();
        let mut cmp = |field, a: String, b: String| {
            if a != b {
                d.push((field, a, b));
            }
        };
        cmp("format", self.format.to_string(), other.format.to_string());
        cmp("preset", self.preset.clone(), other.preset.clone());
        cmp("seed", self.seed.to_string(), other.seed.to_string());
        cmp("n_train", self.n_train.to_string(), other.n_train.to_string());
        cmp("n_val", self.n_val.to_string(), other.n_val.to_string());
        cmp("train_data", self.train_data.clone(), other.train_data.clone());
        cmp("held_out_data", self.held_out_data.clone(), other.held_out_data.clone());
        cmp("recipe", self.recipe.clone(), other.recipe.clone());
        d
    }
}

/// Why the training folder cannot be used.
#[derive(Debug)]
pub enum StoreError {
    /// The folder's stages were trained on something else.
    Mismatch {
        /// The folder.
        dir: PathBuf,
        /// `(field, stored, this run)` of every differing field.
        differences: Vec<(&'static str, String, String)>,
    },
    /// The identity file is missing beside stage files, unreadable or not an identity.
    BadIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The folder could not be created or the identity written.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let afresh = |f: &mut fmt::Formatter<'_>, dir: &Path| {
            write!(
                f,
                ". To train afresh, delete {} or choose another --out (to keep going from these stages, run with \
                 the settings and data they were trained with)",
                dir.display()
            )
        };
        match self {
            StoreError::Mismatch { dir, differences } => {
                write!(f, "the training checkpoints in {} belong to another run: ", dir.display())?;
                let listed: Vec<String> = differences
                    .iter()
                    .map(|(field, stored, this)| format!("{field} is {stored} there, {this} in this run"))
                    .collect();
                write!(f, "{}", listed.join("; "))?;
                afresh(f, dir)
            }
            StoreError::BadIdentity { path, reason } => {
                write!(f, "{}: {reason}", path.display())?;
                afresh(f, path.parent().unwrap_or(Path::new(".")))
            }
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {}

/// The training stages of one run in a folder: `<stage>.bin`, written atomically.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    /// Stages loaded so far, in order.
    pub resumed: Vec<String>,
}

impl DirStore {
    /// Opens (or creates) `dir` for a run of `identity`: a new or empty folder gets the
    /// identity file; an existing one must hold the same identity ([`StoreError::Mismatch`]),
    /// and stage files without an identity file are refused. Removes temporary files left by
    /// killed writers.
    pub fn open(dir: &Path, identity: &Identity) -> Result<Self, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        persist::remove_stale_temps(dir)
            .map_err(|e| StoreError::Io { path: dir.to_owned(), source: std::io::Error::other(e.to_string()) })?;
        let id_path = dir.join(IDENTITY_FILE);
        if id_path.exists() {
            let text = std::fs::read_to_string(&id_path)
                .map_err(|e| StoreError::BadIdentity { path: id_path.clone(), reason: format!("cannot read: {e}") })?;
            let stored: Identity = serde_json::from_str(&text).map_err(|e| StoreError::BadIdentity {
                path: id_path.clone(),
                reason: format!("not a training identity: {e}"),
            })?;
            let differences = stored.differences(identity);
            if !differences.is_empty() {
                return Err(StoreError::Mismatch { dir: dir.to_owned(), differences });
            }
        } else {
            let stages = std::fs::read_dir(dir)
                .map_err(io(dir))?
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "bin"));
            if stages {
                return Err(StoreError::BadIdentity {
                    path: id_path,
                    reason: "missing, but the folder holds stage files of an unknown run".into(),
                });
            }
            crate::report::write_json(&id_path, identity).map_err(io(&id_path))?;
        }
        Ok(Self { dir: dir.to_owned(), resumed: Vec::new() })
    }

    fn path(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}.bin"))
    }
}

impl StageStore for DirStore {
    fn load(&mut self, stage: &str) -> SbpResult<Option<Vec<u8>>> {
        let path = self.path(stage);
        if !path.exists() {
            return Ok(None);
        }
        let bytes =
            persist::read_file(&path).map_err(|source| SparseBpError::StageFile { stage: stage.to_owned(), source })?;
        eprintln!("sparse-mnist: resumed stage {stage} from {}", path.display());
        self.resumed.push(stage.to_owned());
        Ok(Some(bytes))
    }

    fn store(&mut self, stage: &str, bytes: &[u8]) -> SbpResult<()> {
        persist::write_atomic(&self.path(stage), bytes)
            .map_err(|source| SparseBpError::StageFile { stage: stage.to_owned(), source })
    }

    fn location(&self, stage: &str) -> PathBuf {
        self.path(stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparse_bp::paper::{Scale, mnist};

    fn identity(seed: u64, first_pixel: u8) -> Identity {
        let px = [first_pixel, 1, 2, 3];
        Identity::new(&mnist(Scale::Quick), seed, (&px, &[1]), (&[9, 9, 9, 9], &[2]))
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// The presets' recipes hash as they did before `--thesis-sizes` existed (the identities of
    /// `/work/exp/quick3`'s and the first full run's training folders, made with the code before
    /// it): a folder trained by that code resumes. The full preset's changes since are the
    /// shallow models' learning-rate decay on a plateau (`MnistSetup::end_to_end.lr_decay`) and
    /// PGBP's reconstruction weight (`pooled_recon_weight`): without them the full recipe hashes
    /// as that run's did, so nothing else changed. The
    /// thesis-size variant hashes differently, so its stages are never mixed with a preset's.
    #[test]
    fn preset_recipes_hash_as_before_thesis_sizes() {
        use sparse_bp::paper::{Scale, mnist, mnist_thesis_sizes};
        let recipe = |s: &MnistSetup| Identity::new(s, 0, (&[], &[]), (&[], &[])).recipe;
        assert_eq!(recipe(&mnist(Scale::Quick)), "8841d8a0447e4c068e8454dafa9397f70e8d8a0bcc9264d09f2a444d2c03863d");
        assert_eq!(recipe(&mnist(Scale::Full)), "9fd6dbba72ec847ce4a321eda210867c8124fd6fa5ab8eb45752fbeb701ca60c");
        let mut before_decay = mnist(Scale::Full);
        assert!(before_decay.end_to_end.lr_decay.take().is_some() && before_decay.deep.end_to_end.lr_decay.is_none());
        assert!(before_decay.end_to_end.pooled_recon_weight.take().is_some());
        assert!(before_decay.deep.end_to_end.pooled_recon_weight.is_none());
        assert_eq!(recipe(&before_decay), "4fe1e46d8d0782c5c8e555e9f4c428b5944523aa9c54779bd0a0b27db805721d");
        for scale in [Scale::Quick, Scale::Medium, Scale::Full] {
            assert!(!serde_json::to_string(&mnist(scale)).unwrap().contains("thesis"), "{scale:?}");
            assert_ne!(recipe(&mnist_thesis_sizes(scale)), recipe(&mnist(scale)), "{scale:?}");
            let back: MnistSetup =
                serde_json::from_str(&serde_json::to_string(&mnist_thesis_sizes(scale)).unwrap()).unwrap();
            assert_eq!(back, mnist_thesis_sizes(scale), "{scale:?}");
        }
    }

    /// A folder of another run (seed, training pixels, preset) is refused with every
    /// differing field named; the same run reopens it; a damaged identity file is named.
    #[test]
    fn identity_mismatch_names_the_fields() {
        let dir = temp("identity");
        DirStore::open(&dir, &identity(1, 0)).unwrap();
        assert!(dir.join(IDENTITY_FILE).is_file());
        DirStore::open(&dir, &identity(1, 0)).expect("same identity reopens");
        let err = DirStore::open(&dir, &identity(2, 7)).unwrap_err();
        match &err {
            StoreError::Mismatch { differences, .. } => {
                let fields: Vec<_> = differences.iter().map(|d| d.0).collect();
                assert_eq!(fields, ["seed", "train_data"]);
                assert_eq!((differences[0].1.as_str(), differences[0].2.as_str()), ("1", "2"));
            }
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains("seed is 1 there, 2 in this run") && text.contains("train_data"), "{text}");
        assert!(text.contains(&dir.display().to_string()) && text.contains("--out"), "{text}");
        let mut other_preset = identity(1, 0);
        other_preset.preset = "full".into();
        let text = DirStore::open(&dir, &other_preset).unwrap_err().to_string();
        assert!(text.contains("preset is quick there, full in this run"), "{text}");
        // a damaged identity file
        std::fs::write(dir.join(IDENTITY_FILE), "{\"format\": 1").unwrap();
        let err = DirStore::open(&dir, &identity(1, 0)).unwrap_err();
        assert!(matches!(&err, StoreError::BadIdentity { path, .. } if path.ends_with(IDENTITY_FILE)), "{err}");
        // stage files without an identity
        std::fs::remove_file(dir.join(IDENTITY_FILE)).unwrap();
        std::fs::write(dir.join("dictionary-bp.bin"), b"x").unwrap();
        let err = DirStore::open(&dir, &identity(1, 0)).unwrap_err();
        assert!(err.to_string().contains("unknown run"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The recipe hash covers the group penalties (issue 20): a folder written by the recipe
    /// before the shallow `gamma_gbp` went from 2.0 to 6.0 and `DeepConfig::group_gamma` and
    /// `EndToEnd::group_recon_weight` were added (same preset, seed and data; its recipe JSON
    /// rebuilt from today's by undoing the three) is
    /// refused with `recipe` as the one differing field, and so is a recipe that differs only
    /// in either penalty.
    #[test]
    fn old_recipe_store_is_refused() {
        let (train, held_out) = ((&[0u8, 1, 2, 3][..], &[1u8][..]), (&[9u8; 4][..], &[2u8][..]));
        let setup = mnist(Scale::Full);
        assert_eq!((setup.gamma_gbp, setup.deep.group_gamma), (6.0, 2.0));
        let now = Identity::new(&setup, 1, train, held_out);
        let json = serde_json::to_string(&setup).unwrap();
        assert_eq!(now.recipe, fingerprint([json.as_bytes()]));
        let (new_gamma, new_field) = ("\"gamma_gbp\":6.0,", "\"group_gamma\":2.0,");
        let recon_field = "\"group_recon_weight\":null,"; // shallow and 3-layer end to end
        assert_eq!((json.matches(new_gamma).count(), json.matches(new_field).count()), (1, 1), "{json}");
        assert_eq!(json.matches(recon_field).count(), 2, "{json}");
        let old_json = json.replace(new_gamma, "\"gamma_gbp\":2.0,").replace(new_field, "").replace(recon_field, "");
        let old = Identity { recipe: fingerprint([old_json.as_bytes()]), ..now.clone() };
        let dir = temp("old-recipe");
        DirStore::open(&dir, &old).unwrap();
        match DirStore::open(&dir, &now).unwrap_err() {
            StoreError::Mismatch { differences, .. } => {
                assert_eq!(differences.iter().map(|d| d.0).collect::<Vec<_>>(), ["recipe"]);
            }
            other => panic!("{other}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let mut gamma = setup.clone();
        gamma.gamma_gbp = 2.0;
        let mut deep_gamma = setup.clone();
        deep_gamma.deep.group_gamma = 6.0;
        for other in [gamma, deep_gamma] {
            let d = now.differences(&Identity::new(&other, 1, train, held_out));
            assert_eq!(d.iter().map(|d| d.0).collect::<Vec<_>>(), ["recipe"]);
        }
    }

    /// Stages round-trip through the folder; a truncated stage file is an error that names
    /// the file; an absent stage is `None`.
    #[test]
    fn truncated_stage_file_is_named() {
        let dir = temp("stages");
        let mut s = DirStore::open(&dir, &identity(1, 0)).unwrap();
        assert_eq!(s.load("approximators").unwrap(), None);
        let blob = persist::frame(sparse_bp::paper::STAGE_KIND, &[5u8; 100]);
        s.store("approximators", &blob).unwrap();
        assert_eq!(s.load("approximators").unwrap(), Some(blob.clone()));
        assert_eq!(s.resumed, ["approximators"]);
        let path = dir.join("approximators.bin");
        std::fs::write(&path, &blob[..blob.len() - 10]).unwrap();
        let err = s.load("approximators").unwrap_err();
        assert!(
            matches!(&err, SparseBpError::StageFile { stage, source: persist::PersistError::Truncated { path: p, .. } }
                if stage == "approximators" && *p == path),
            "{err}"
        );
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Resumable training (issue 20): [`MnistSetup::train_resumable`](super::MnistSetup::train_resumable)
//! keeps the result of every finished stage in a [`StageStore`] and, when a stage is already
//! there, loads it instead of training it again. A run killed in its 65th minute thus loses
//! only the stage it was in.
//!
//! Each stage is kept as one [`persist`]-framed blob of kind [`STAGE_KIND`]: the stage's
//! name, its result (models, reports, descriptions) and the [`StageTime`]s measured when it
//! was computed. Loading checks the framing (magic, length, checksum), the kind and the name,
//! and re-checks every model ([`ModelFile::validated`]), so that a truncated, corrupt or
//! misplaced blob is a typed error ([`SparseBpError::StageFile`], [`SparseBpError::Stage`],
//! [`SparseBpError::InvalidModel`]), never a panic nor a silently different model.
//!
//! A store does not know what the stages were trained on: the caller must hand a store only
//! to a run of the same data, recipe and seed (`cargo xtask reproduce sparse-mnist` keeps an
//! identity file beside its store and refuses a different one).
//!
//! ```
//! use sparse_bp::paper::{MemoryStore, StageStore};
//! let mut store = MemoryStore::default();
//! assert_eq!(store.load("dictionary-bp")?, None);
//! store.store("dictionary-bp", &[1, 2, 3])?;
//! assert_eq!(store.load("dictionary-bp")?, Some(vec![1, 2, 3]));
//! assert_eq!(store.stages(), ["dictionary-bp"]);
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StageTime;
use crate::train::ModelFile;
use crate::{Result, SparseBpError};

/// The [`persist::Kind`] of a stored stage (version 1: `(name, result, times)`).
pub const STAGE_KIND: persist::Kind = persist::Kind::new("sbp-train-stage", 1);

/// Where resumable training keeps the result of each finished stage (see the module
/// documentation). `load` and `store` see opaque bytes; the training recipe encodes and
/// checks them.
pub trait StageStore {
    /// The bytes stored for `stage`, or `None` if the stage has not been stored.
    fn load(&mut self, stage: &str) -> Result<Option<Vec<u8>>>;

    /// Keeps `bytes` as the result of `stage` (replacing what was there).
    fn store(&mut self, stage: &str, bytes: &[u8]) -> Result<()>;

    /// Where `stage` is kept, named in error messages (default: `<stage NAME>`).
    fn location(&self, stage: &str) -> PathBuf {
        PathBuf::from(format!("<stage {stage}>"))
    }
}

/// A store that keeps nothing: every stage is computed ([`super::MnistSetup::train`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl StageStore for NoStore {
    fn load(&mut self, _stage: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn store(&mut self, _stage: &str, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// A store in memory, by stage name.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    stages: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    /// The stored stages' names, in alphabetical order.
    #[must_use]
    pub fn stages(&self) -> Vec<&str> {
        self.stages.keys().map(String::as_str).collect()
    }

    /// The bytes of one stage, mutable (to damage them in tests, or to drop a stage by
    /// clearing them: an empty blob is a decoding error, not an absent stage).
    pub fn bytes_mut(&mut self, stage: &str) -> Option<&mut Vec<u8>> {
        self.stages.get_mut(stage)
    }

    /// Removes a stage; it is computed again by the next run.
    pub fn remove(&mut self, stage: &str) -> Option<Vec<u8>> {
        self.stages.remove(stage)
    }
}

impl StageStore for MemoryStore {
    fn load(&mut self, stage: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.stages.get(stage).cloned())
    }

    fn store(&mut self, stage: &str, bytes: &[u8]) -> Result<()> {
        self.stages.insert(stage.to_owned(), bytes.to_vec());
        Ok(())
    }
}

/// Runs one stage through `store`: loads and decodes it if stored (its times marked
/// [`StageTime::resumed`]), else runs `compute` (which pushes its own times onto the vector
/// it is given), stores the result and its times. Either way the stage's times are appended
/// to `timing`. Returns the result and whether it was loaded.
pub(crate) fn run_stage<T: Serialize + DeserializeOwned>(
    store: &mut dyn StageStore,
    name: &str,
    timing: &mut Vec<StageTime>,
    compute: impl FnOnce(&mut Vec<StageTime>) -> Result<T>,
) -> Result<(T, bool)> {
    let location = store.location(name);
    if let Some(bytes) = store.load(name)? {
        let (stored, value, mut times): (String, T, Vec<StageTime>) = persist::decode(&location, STAGE_KIND, &bytes)
            .map_err(|source| SparseBpError::StageFile { stage: name.to_owned(), source })?;
        if stored != name {
            return Err(SparseBpError::Stage {
                stage: name.to_owned(),
                location,
                reason: format!("holds stage `{stored}`"),
            });
        }
        tracing::info!(stage = name, location = %location.display(), "training stage resumed");
        for t in &mut times {
            t.resumed = true;
        }
        timing.extend(times);
        return Ok((value, true));
    }
    let mut times = Vec::new();
    let value = compute(&mut times)?;
    let bytes = persist::encode(&location, STAGE_KIND, &(name, &value, &times))
        .map_err(|source| SparseBpError::StageFile { stage: name.to_owned(), source })?;
    store.store(name, &bytes)?;
    timing.extend(times);
    Ok((value, false))
}

/// The result stored in the blob `bytes` of `stage` (its measured times dropped): the framing,
/// the kind and the stage's name are checked as [`run_stage`] checks them.
pub(crate) fn decode_result<T: DeserializeOwned>(stage: &str, bytes: &[u8]) -> Result<T> {
    let location = PathBuf::from(format!("<stage {stage}>"));
    let (stored, value, _times): (String, T, Vec<StageTime>) = persist::decode(&location, STAGE_KIND, bytes)
        .map_err(|source| SparseBpError::StageFile { stage: stage.to_owned(), source })?;
    if stored != stage {
        return Err(SparseBpError::Stage {
            stage: stage.to_owned(),
            location,
            reason: format!("holds stage `{stored}`"),
        });
    }
    Ok(value)
}

/// `model` re-checked by its constructor if it was `loaded` from `store`'s `stage` (derived
/// state such as Gram matrices is not stored), else as it is.
pub(crate) fn checked<M: ModelFile>(model: M, loaded: bool, store: &dyn StageStore, stage: &str) -> Result<M> {
    if !loaded {
        return Ok(model);
    }
    model.validated().map_err(|e| SparseBpError::InvalidModel { path: store.location(stage), source: Box::new(e) })
}

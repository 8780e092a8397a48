//! Resumable MNIST training (issue 20): a run killed while storing any stage and resumed with
//! the same store returns the same models, reports and descriptions, bit for bit, as an
//! uninterrupted run, and loads exactly the stages the killed run finished; a damaged or
//! misplaced stage is a typed error.

use std::path::PathBuf;

use nalgebra::DMatrix;
use persist::PersistError;
use sparse_bp::models::Classifier;
use sparse_bp::paper::{self, MemoryStore, MnistModels, MnistSetup, Scale, StageStore};
use sparse_bp::train::{ModelFile, encode_model};
use sparse_bp::{Result, SparseBpError};

/// The quick preset cut down to 28 pixels (one token of the linear transformer), 64 atoms in
/// 32 groups of 2, small penalties (the 3-layer group models' layer 1 its own), one or two epochs of everything, end-to-end training on.
fn tiny() -> MnistSetup {
    let mut s = paper::mnist(Scale::Quick);
    (s.atoms, s.group, s.dict_epochs) = (64, 2, 1);
    (s.lambda_bp, s.gamma_gbp) = (0.1, 0.1);
    // the 3-layer group models' own layer-1 penalty: stage dictionary-group-deep
    s.deep.group_gamma = 0.2;
    (s.sizes.clf_epochs, s.sizes.approx_epochs) = (2, 1);
    s.end_to_end.epochs = 1;
    s.end_to_end.batch_size = 20;
    s.deep.atoms = [8, 16];
    (s.deep.dict_epochs, s.deep.clf_epochs) = (1, 2);
    s.deep.end_to_end.epochs = 1;
    s.deep.end_to_end.batch_size = 20;
    s.deep.n_train = 40;
    s
}

/// Deterministic class-dependent images: a bump whose place depends on the class, plus a
/// pattern that depends on the image.
fn data(n: usize, offset: usize) -> (DMatrix<f64>, Vec<usize>) {
    let labels: Vec<usize> = (0..n).map(|j| (j + offset) % 10).collect();
    let x = DMatrix::from_fn(28, n, |i, j| {
        let c = labels[j];
        let bump = if i / 3 == c % 9 { 1.0 } else { 0.0 };
        bump + (((i * 7 + (j + offset) * 13) % 17) as f64 / 17.0 - 0.5) * 0.4
    });
    (x, labels)
}

const SEED: u64 = 5;

fn train(setup: &MnistSetup, store: &mut dyn StageStore) -> Result<MnistModels> {
    let (x, l) = data(60, 0);
    let (xv, lv) = data(20, 60);
    setup.train_resumable(&x, &l, &xv, &lv, SEED, store)
}

/// A store that fails ("killed") when asked to store its `kill_at`-th stage (0-based) and
/// records which stages it handed out.
struct Killing<'a> {
    inner: &'a mut MemoryStore,
    kill_at: Option<usize>,
    stored: usize,
    loaded: Vec<String>,
}

impl<'a> Killing<'a> {
    fn new(inner: &'a mut MemoryStore, kill_at: Option<usize>) -> Self {
        Self { inner, kill_at, stored: 0, loaded: Vec::new() }
    }
}

impl StageStore for Killing<'_> {
    fn load(&mut self, stage: &str) -> Result<Option<Vec<u8>>> {
        let b = self.inner.load(stage)?;
        if b.is_some() {
            self.loaded.push(stage.to_owned());
        }
        Ok(b)
    }

    fn store(&mut self, stage: &str, bytes: &[u8]) -> Result<()> {
        if Some(self.stored) == self.kill_at {
            return Err(SparseBpError::Stage {
                stage: stage.to_owned(),
                location: self.location(stage),
                reason: "killed".into(),
            });
        }
        self.stored += 1;
        self.inner.store(stage, bytes)
    }
}

/// The stages in the order a run computes them.
const STAGES: [&str; 18] = [
    "dictionary-bp",
    "dictionary-group",
    "shallow-bp",
    "shallow-gbp",
    "shallow-pgbp",
    "end-to-end-bp",
    "end-to-end-gbp",
    "end-to-end-pgbp",
    "approximators",
    "dictionary-group-deep",
    "deep-chain-l1",
    "deep-chain-group",
    "deep-lbp",
    "deep-lgbp",
    "deep-lpgbp",
    "deep-dp",
    "deep-gdp",
    "deep-pgdp",
];

/// A model's stored fields and its logits on a fixed batch (derived state included), as bits.
fn fingerprint<M: ModelFile + Classifier>(m: &M) -> (Vec<u8>, Vec<u64>) {
    let x = DMatrix::from_fn(28, 4, |i, j| ((i + 3 * j) % 7) as f64 * 0.2 - 0.6);
    let logits = m.logits(&x).unwrap();
    (encode_model(m).unwrap(), logits.iter().map(|v| v.to_bits()).collect())
}

/// Everything a run returns but the measured seconds, bit for bit.
fn assert_same(a: &MnistModels, b: &MnistModels, what: &str) {
    let (sa, sb) = (&a.shallow, &b.shallow);
    assert_eq!(sa.pursuit.len(), 3, "{what}");
    assert_eq!(sa.pursuit.len(), sb.pursuit.len(), "{what}");
    for ((na, ma), (nb, mb)) in sa.pursuit.iter().zip(&sb.pursuit) {
        assert_eq!(na, nb, "{what}");
        assert!(fingerprint(ma) == fingerprint(mb), "{what}: {na} differs");
    }
    assert_eq!(sa.approx.len(), 3, "{what}");
    for ((na, ma), (nb, mb)) in sa.approx.iter().zip(&sb.approx) {
        assert_eq!(na, nb, "{what}");
        assert!(fingerprint(ma) == fingerprint(mb), "{what}: {na} differs");
    }
    assert_eq!(sa.approx_info, sb.approx_info, "{what}");
    assert_eq!(a.deep.len(), 6, "{what}");
    for (ma, mb) in a.deep.iter().zip(&b.deep) {
        assert_eq!(ma.name(), mb.name(), "{what}");
        assert!(fingerprint(ma) == fingerprint(mb), "{what}: {} differs", ma.name());
    }
    assert_eq!(a.reports.len(), 9, "{what}: 3 shallow and 6 3-layer reports");
    assert_eq!(a.reports, b.reports, "{what}");
    assert_eq!(a.dict_recon_bp.to_bits(), b.dict_recon_bp.to_bits(), "{what}");
    assert_eq!(a.dict_recon_group.to_bits(), b.dict_recon_group.to_bits(), "{what}");
    let (mut da, mut db) = (a.deep_info.clone(), b.deep_info.clone());
    for m in da.models.iter_mut().chain(db.models.iter_mut()) {
        m.train_seconds = 0.0;
    }
    assert_eq!(da, db, "{what}");
    let work = |m: &MnistModels| -> Vec<(String, String, usize, usize)> {
        m.timing.iter().map(|t| (t.stage.clone(), t.model.clone(), t.images, t.epochs)).collect()
    };
    assert_eq!(work(a), work(b), "{what}");
}

/// Killed while storing stage `k` (so stages `0..k` are stored), then resumed with the same
/// store: the resumed run loads exactly those `k` stages and equals an uninterrupted run bit
/// for bit. `k` covers the dictionaries, the shallow models, their end-to-end training, the
/// approximators, the 3-layer group models' layer-1 dictionary, the 3-layer chains and the
/// 3-layer models.
#[test]
fn a_killed_run_resumes_bit_for_bit() {
    let setup = tiny();
    let mut full_store = MemoryStore::default();
    let uninterrupted = train(&setup, &mut Killing::new(&mut full_store, None)).unwrap();
    assert_eq!(full_store.stages().len(), STAGES.len());
    let mut sorted = STAGES.to_vec();
    sorted.sort_unstable();
    assert_eq!(full_store.stages(), sorted);
    assert!(uninterrupted.timing.iter().all(|t| !t.resumed));
    // the same as the plain `train` (no store)
    let (x, l) = data(60, 0);
    let (xv, lv) = data(20, 60);
    let plain = setup.train(&x, &l, &xv, &lv, SEED).unwrap();
    assert_same(&uninterrupted, &plain, "train vs train_resumable");

    for k in [0, 3, 6, 8, 9, 11, 13, 17] {
        let mut store = MemoryStore::default();
        let err = train(&setup, &mut Killing::new(&mut store, Some(k))).err().expect("killed");
        assert!(
            matches!(&err, SparseBpError::Stage { stage, reason, .. } if stage == STAGES[k] && reason == "killed"),
            "k = {k}: {err}"
        );
        assert_eq!(store.stages().len(), k, "k = {k}");
        let mut resuming = Killing::new(&mut store, None);
        let resumed = train(&setup, &mut resuming).unwrap();
        assert_eq!(resuming.loaded, STAGES[..k], "k = {k}");
        assert_same(&resumed, &uninterrupted, &format!("killed at stage {k} ({})", STAGES[k]));
        // the loaded stages' times are marked and are those of the killed run
        let n_resumed = resumed.timing.iter().filter(|t| t.resumed).count();
        assert_eq!(resumed.timing.iter().take_while(|t| t.resumed).count(), n_resumed, "k = {k}");
        assert_eq!(n_resumed > 0, k > 0, "k = {k}");
        // and the store now holds every stage: a third run trains nothing
        assert_eq!(store.stages().len(), STAGES.len(), "k = {k}");
    }
    let mut again = Killing::new(&mut full_store, Some(0));
    let third = train(&setup, &mut again).unwrap();
    assert_eq!(again.loaded, STAGES, "a complete store: every stage loaded, none stored");
    assert!(third.timing.iter().all(|t| t.resumed));
    assert_same(&third, &uninterrupted, "complete store");
}

/// A damaged stage (truncated, a flipped byte, empty), a stage stored under another stage's
/// name and a model that fails its checks are typed errors naming the stage, not panics.
#[test]
fn damaged_stages_are_typed_errors() {
    let mut setup = tiny();
    // the shallow part is enough: kill before the approximators
    setup.end_to_end.epochs = 0;
    let mut store = MemoryStore::default();
    let stop = STAGES.iter().position(|s| *s == "approximators").unwrap() - 3; // e2e stages off
    assert!(train(&setup, &mut Killing::new(&mut store, Some(stop))).is_err());
    assert_eq!(store.stages().len(), 5);
    let good = store.clone();
    let location = |stage: &str| PathBuf::from(format!("<stage {stage}>"));

    type Damage = fn(&mut Vec<u8>);
    let damage: [(&str, Damage); 3] = [
        ("truncated", |b| b.truncate(b.len() - 7)),
        ("flipped", |b| {
            let i = b.len() - 11;
            b[i] ^= 0x20;
        }),
        ("empty", |b| b.clear()),
    ];
    for stage in ["dictionary-group", "shallow-gbp"] {
        for (what, f) in damage {
            let mut s = good.clone();
            f(s.bytes_mut(stage).unwrap());
            let err = train(&setup, &mut s).err().unwrap_or_else(|| panic!("{stage} {what}: accepted"));
            match &err {
                SparseBpError::StageFile { stage: st, source } => {
                    assert_eq!(st, stage, "{what}");
                    let path = match source {
                        PersistError::Truncated { path, .. }
                        | PersistError::Checksum { path, .. }
                        | PersistError::BadMagic { path } => path,
                        other => panic!("{stage} {what}: {other}"),
                    };
                    assert_eq!(path, &location(stage), "{what}");
                }
                other => panic!("{stage} {what}: {other}"),
            }
            assert!(err.to_string().contains(stage), "{err}");
        }
    }
    // a stage under another stage's name
    let mut s = good.clone();
    let other = s.load("shallow-bp").unwrap().unwrap();
    s.store("shallow-gbp", &other).unwrap();
    let err = train(&setup, &mut s).err().unwrap();
    assert!(
        matches!(&err, SparseBpError::Stage { stage, reason, .. } if stage == "shallow-gbp" && reason.contains("shallow-bp")),
        "{err}"
    );
    // a well-framed stage whose model fails its checks (NaN classifier weight)
    let mut s = good.clone();
    type Stage = (String, sparse_bp::models::PursuitClassifier, Vec<paper::StageTime>);
    let (_, mut m, times): Stage =
        persist::decode(&location("shallow-bp"), paper::STAGE_KIND, &s.load("shallow-bp").unwrap().unwrap()).unwrap();
    m.classifier.w[(0, 0)] = f64::NAN;
    let bytes = persist::encode(&location("shallow-bp"), paper::STAGE_KIND, &("shallow-bp", &m, &times)).unwrap();
    s.store("shallow-bp", &bytes).unwrap();
    let err = train(&setup, &mut s).err().unwrap();
    assert!(matches!(&err, SparseBpError::InvalidModel { path, .. } if *path == location("shallow-bp")), "{err}");
    // the undamaged store resumes
    let mut s = good;
    assert!(train(&setup, &mut s).is_ok());
}

/// The 3-layer models do not depend on the shallow group penalty (issue 20): their layer-1
/// group dictionary is learned with `deep.group_gamma` in its own stage when the shallow
/// `gamma_gbp` differs, and is the shallow dictionary (no extra stage) when it is the same, so
/// both runs give the same 3-layer models bit for bit.
#[test]
fn deep_models_keep_their_layer_1_group_penalty() {
    let mut own = tiny();
    own.end_to_end.epochs = 0;
    let mut shared = own.clone();
    shared.gamma_gbp = own.deep.group_gamma;
    assert_ne!(own.gamma_gbp, own.deep.group_gamma);
    let (mut s_own, mut s_shared) = (MemoryStore::default(), MemoryStore::default());
    let a = train(&own, &mut s_own).unwrap();
    let b = train(&shared, &mut s_shared).unwrap();
    assert!(s_own.stages().contains(&"dictionary-group-deep"));
    assert!(!s_shared.stages().contains(&"dictionary-group-deep"));
    assert_eq!(s_own.stages().len(), s_shared.stages().len() + 1);
    // the shallow group models differ (their penalty), the 3-layer models do not
    assert!(fingerprint(&a.shallow.pursuit[1].1) != fingerprint(&b.shallow.pursuit[1].1));
    assert_eq!(a.deep.len(), 6);
    for (ma, mb) in a.deep.iter().zip(&b.deep) {
        assert_eq!(ma.name(), mb.name());
        assert!(fingerprint(ma) == fingerprint(mb), "{} differs", ma.name());
    }
    assert_eq!(a.deep_info.group, b.deep_info.group);
    // the extra dictionary is timed as a dictionary-group stage of model `deep`
    let deep_dict = a.timing.iter().filter(|t| t.stage == "dictionary-group" && t.model == "deep").count();
    assert_eq!(deep_dict, 1);
    assert!(!b.timing.iter().any(|t| t.model == "deep"));
}

/// A run split into disjoint selections of units ([`paper::MnistSetup::train_selected`]), each
/// with its own store, computes every stage with the numbers of an unsharded run: the stores
/// merged (the first copy of a shared stage kept) hold exactly the unsharded run's stages, a
/// shared stage computed by two selections holds the same result in both
/// ([`paper::same_stage_result`]), and a run of every unit on the merged store loads every
/// stage, trains nothing and returns the unsharded run's models bit for bit.
#[test]
fn selections_of_units_compute_the_unsharded_stages() {
    let setup = tiny();
    let mut full_store = MemoryStore::default();
    let unsharded = train(&setup, &mut full_store).unwrap();
    let (x, l) = data(60, 0);
    let (xv, lv) = data(20, 60);
    let slices: [&[&str]; 3] = [&["shallow", "lgbp", "dp"], &["lbp", "lpgbp"], &["gdp", "pgdp"]];
    let mut merged = MemoryStore::default();
    let mut shared_twice = 0;
    for names in slices {
        let units = paper::Units::new(names).unwrap();
        let mut store = MemoryStore::default();
        let part = setup.train_selected(&x, &l, &xv, &lv, SEED, &mut store, units).unwrap();
        let deep: Vec<&str> = part.deep.models.iter().map(|m| m.name()).collect();
        assert_eq!(deep, names.iter().copied().filter(|n| *n != "shallow").collect::<Vec<_>>());
        assert_eq!(part.shallow.is_some(), names.contains(&"shallow"));
        for m in &part.deep.models {
            let same = unsharded.deep.iter().find(|u| u.name() == m.name()).unwrap();
            assert!(fingerprint(m) == fingerprint(same), "{} differs", m.name());
        }
        let names_stored: Vec<String> = store.stages().iter().map(|s| (*s).to_owned()).collect();
        for stage in names_stored.iter().map(String::as_str) {
            let bytes = store.load(stage).unwrap().unwrap();
            let full = full_store.load(stage).unwrap().unwrap();
            // (the other stages hold their measured seconds: their results are compared below)
            if paper::SHARED_STAGES.contains(&stage) {
                assert!(paper::same_stage_result(stage, &bytes, &full).unwrap(), "{names:?}: stage {stage} differs");
            }
            match merged.load(stage).unwrap() {
                Some(first) => {
                    assert!(paper::SHARED_STAGES.contains(&stage), "{stage} computed by two selections");
                    assert!(paper::same_stage_result(stage, &first, &bytes).unwrap());
                    shared_twice += 1;
                }
                None => merged.store(stage, &bytes).unwrap(),
            }
        }
    }
    // dictionary-bp (shallow, lbp/dp), dictionary-group-deep and deep-chain-group (lgbp, lpgbp, gdp)
    // and deep-chain-l1 (dp, lbp) are computed more than once
    assert!(shared_twice >= 4, "{shared_twice}");
    assert_eq!(merged.stages(), full_store.stages());
    let mut resuming = Killing::new(&mut merged, Some(0));
    let collected = train(&setup, &mut resuming).unwrap();
    assert_eq!(resuming.loaded, STAGES, "every stage loaded, none trained");
    assert_same(&collected, &unsharded, "merged shards");
    // a different result under a shared stage's name is told apart; a non-shared stage with other
    // bytes (its seconds differ) is a different result
    let bp = full_store.load("dictionary-bp").unwrap().unwrap();
    let grp = full_store.load("dictionary-group").unwrap().unwrap();
    assert!(paper::same_stage_result("dictionary-bp", &bp, &bp).unwrap());
    assert!(paper::same_stage_result("dictionary-bp", &bp, &grp).is_err(), "a blob of another stage");
    let m = full_store.load("deep-lbp").unwrap().unwrap();
    let mut other = m.clone();
    let k = other.len() - 3;
    other[k] ^= 1;
    assert!(!paper::same_stage_result("deep-lbp", &m, &other).unwrap());
    assert!(paper::Units::new(&["lbp", "bp"]).is_err());
}

/// [`tiny`] with the thesis-size variant's structure ([`paper::ThesisSizes`]): the 3-layer
/// models' own layer 1 of 20 atoms (10 groups of 2), layers 2-3 of 8 / 16 atoms, the pooled
/// models' 8 / 12.
fn tiny_thesis() -> MnistSetup {
    let mut s = tiny();
    s.deep.thesis = Some(paper::ThesisSizes { layer1_atoms: 20, pooled_atoms: [8, 12] });
    s
}

/// The stages of a [`tiny_thesis`] run in the order it computes them.
const THESIS_STAGES: [&str; 20] = [
    "dictionary-bp",
    "dictionary-group",
    "shallow-bp",
    "shallow-gbp",
    "shallow-pgbp",
    "end-to-end-bp",
    "end-to-end-gbp",
    "end-to-end-pgbp",
    "approximators",
    "dictionary-bp-thesis",
    "dictionary-group-thesis",
    "deep-chain-l1-thesis",
    "deep-chain-group-thesis",
    "deep-chain-pooled-thesis",
    "deep-lbp-thesis",
    "deep-lgbp-thesis",
    "deep-lpgbp-thesis",
    "deep-dp-thesis",
    "deep-gdp-thesis",
    "deep-pgdp-thesis",
];

/// With thesis sizes, a run stores exactly [`THESIS_STAGES`] (none of the presets' 3-layer
/// stages), a killed one resumes bit for bit, and a run split into disjoint selections of units
/// computes every stage once but the shared ones ([`paper::SHARED_STAGES`]: the layer-1
/// dictionaries and the chains, each equal in every selection that computes it): the merged
/// stores hold the unsharded run's stages, and a run of every unit on them loads every stage and
/// returns the unsharded run's models bit for bit.
#[test]
fn thesis_sizes_shards_cover_every_stage_once() {
    let setup = tiny_thesis();
    let mut full_store = MemoryStore::default();
    let mut recording = Killing::new(&mut full_store, None);
    let unsharded = train(&setup, &mut recording).unwrap();
    assert!(recording.loaded.is_empty());
    let mut sorted = THESIS_STAGES.to_vec();
    sorted.sort_unstable();
    assert_eq!(full_store.stages(), sorted);
    for t in ["dictionary-bp-thesis", "dictionary-group-thesis", "deep-chain-l1-thesis"] {
        assert!(paper::SHARED_STAGES.contains(&t), "{t}");
    }
    for t in ["deep-chain-group-thesis", "deep-chain-pooled-thesis"] {
        assert!(paper::SHARED_STAGES.contains(&t), "{t}");
    }
    // killed while storing the pooled chain: resumes with the stages before it
    let k = THESIS_STAGES.iter().position(|s| *s == "deep-chain-pooled-thesis").unwrap();
    let mut store = MemoryStore::default();
    assert!(train(&setup, &mut Killing::new(&mut store, Some(k))).is_err());
    let mut resuming = Killing::new(&mut store, None);
    let resumed = train(&setup, &mut resuming).unwrap();
    assert_eq!(resuming.loaded, THESIS_STAGES[..k]);
    assert_same(&resumed, &unsharded, "thesis sizes, killed at the pooled chain");
    assert_eq!(resumed.deep_info.pooled, unsharded.deep_info.pooled);
    // shards: units dealt so that every thesis chain and dictionary is shared by two of them
    let (x, l) = data(60, 0);
    let (xv, lv) = data(20, 60);
    let slices: [&[&str]; 3] = [&["shallow", "lgbp", "dp", "pgdp"], &["lbp", "lpgbp"], &["gdp"]];
    let mut merged = MemoryStore::default();
    let mut shared_twice = Vec::new();
    for names in slices {
        let units = paper::Units::new(names).unwrap();
        let mut store = MemoryStore::default();
        let part = setup.train_selected(&x, &l, &xv, &lv, SEED, &mut store, units).unwrap();
        let deep: Vec<&str> = part.deep.models.iter().map(|m| m.name()).collect();
        let mut want: Vec<&str> = names.iter().copied().filter(|n| *n != "shallow").collect();
        want.sort_by_key(|n| ["lbp", "lgbp", "lpgbp", "dp", "gdp", "pgdp"].iter().position(|m| m == n));
        assert_eq!(deep, want);
        assert_eq!(part.deep.pooled.is_some(), names.contains(&"lpgbp") || names.contains(&"pgdp"), "{names:?}");
        for m in &part.deep.models {
            let same = unsharded.deep.iter().find(|u| u.name() == m.name()).unwrap();
            assert!(fingerprint(m) == fingerprint(same), "{} differs", m.name());
        }
        let stored: Vec<String> = store.stages().iter().map(|s| (*s).to_owned()).collect();
        for stage in stored.iter().map(String::as_str) {
            assert!(THESIS_STAGES.contains(&stage), "{names:?}: unexpected stage {stage}");
            let bytes = store.load(stage).unwrap().unwrap();
            let full = full_store.load(stage).unwrap().unwrap();
            if paper::SHARED_STAGES.contains(&stage) {
                assert!(paper::same_stage_result(stage, &bytes, &full).unwrap(), "{names:?}: stage {stage} differs");
            }
            match merged.load(stage).unwrap() {
                Some(first) => {
                    assert!(paper::SHARED_STAGES.contains(&stage), "{stage} computed by two selections");
                    assert!(paper::same_stage_result(stage, &first, &bytes).unwrap());
                    shared_twice.push(stage.to_owned());
                }
                None => merged.store(stage, &bytes).unwrap(),
            }
        }
    }
    shared_twice.sort_unstable();
    assert_eq!(
        shared_twice,
        [
            "deep-chain-group-thesis",
            "deep-chain-l1-thesis",
            "deep-chain-pooled-thesis",
            "dictionary-bp-thesis",
            "dictionary-group-thesis",
            "dictionary-group-thesis"
        ]
    );
    assert_eq!(merged.stages(), full_store.stages());
    let mut resuming = Killing::new(&mut merged, Some(0));
    let collected = train(&setup, &mut resuming).unwrap();
    assert_eq!(resuming.loaded, THESIS_STAGES, "every stage loaded, none trained");
    assert_same(&collected, &unsharded, "merged thesis-size shards");
}

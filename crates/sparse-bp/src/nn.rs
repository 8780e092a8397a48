//! Small feedforward networks with hand-written forward and backward passes: the
//! approximators of spec section 4 (a single dense layer, a deep dense network and a
//! linear transformer, each ending in batch-norm and ReLU).
//!
//! Layout: a batch is a matrix with one **column per sample** (`features x batch`), like
//! the signals of [`crate::Solver`]. Every layer keeps its parameters in
//! `Vec<DMatrix<f64>>` so that one [`Adam`] optimiser serves every layer.
//!
//! The linear-attention layer (Katharopoulos et al. 2020) reads a sample as `T` tokens
//! of `p` consecutive inputs (zero-padded), embeds them (`H = W_e U + P`), and returns
//! `H + A` flattened, with `A_i = S phi(q_i) / (z^T phi(q_i))`, `S = sum_j v_j phi(k_j)^T`,
//! `z = sum_j phi(k_j)`, `phi(x) = elu(x) + 1`, `q = W_q h`, `k = W_k h`, `v = W_v h`.
//!
//! ```
//! use sparse_bp::nn::Network;
//! let net = Network::dense(6, 3, 1).unwrap();
//! let x = nalgebra::DMatrix::from_fn(6, 4, |i, j| (i + j) as f64 * 0.1);
//! let y = net.forward(&x).unwrap();
//! assert_eq!(y.shape(), (3, 4));
//! assert!(y.iter().all(|v| *v >= 0.0)); // ends in ReLU
//! ```

use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError, check_finite};

/// Batch-norm variance floor.
const BN_EPS: f64 = 1e-5;

/// What a layer computes. Parameters live in [`Layer::params`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LayerKind {
    /// `y = W x + b`; params `[W (out x in), b (out x 1)]`.
    Linear,
    /// `y = max(x, 0)`; no params.
    Relu,
    /// Batch normalisation over the batch; params `[gamma (n x 1), beta (n x 1)]`.
    /// Training mode uses the batch statistics and updates the running ones.
    BatchNorm {
        /// Running mean (evaluation mode).
        running_mean: Vec<f64>,
        /// Running (biased) variance (evaluation mode).
        running_var: Vec<f64>,
        /// Weight of the new batch statistic in the running averages.
        momentum: f64,
    },
    /// Linear attention with residual; params `[W_e (d x p), P (d x T), W_q, W_k, W_v (d x d)]`.
    /// Input length `<= T p` (zero-padded), output length `d T`.
    LinearAttention {
        /// Number of tokens `T`.
        tokens: usize,
        /// Inputs per token `p`.
        patch: usize,
        /// Model width `d`.
        width: usize,
    },
}

/// One layer: its kind and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// What the layer computes.
    pub kind: LayerKind,
    /// Parameters (see [`LayerKind`]).
    pub params: Vec<DMatrix<f64>>,
    /// Input length.
    pub n_in: usize,
    /// Output length.
    pub n_out: usize,
}

/// Values a layer keeps from the forward pass for the backward pass.
#[derive(Debug, Clone)]
enum Cache {
    Input(DMatrix<f64>),
    Bn { xhat: DMatrix<f64>, inv_std: DVector<f64> },
    Attention(Vec<AttnCache>),
}

#[derive(Debug, Clone)]
struct AttnCache {
    u: DMatrix<f64>,
    h: DMatrix<f64>,
    q: DMatrix<f64>,
    k: DMatrix<f64>,
    v: DMatrix<f64>,
    pq: DMatrix<f64>,
    pk: DMatrix<f64>,
    s: DMatrix<f64>,
    z: DVector<f64>,
    den: DVector<f64>,
    a: DMatrix<f64>,
}

fn elu1(x: f64) -> f64 {
    if x > 0.0 { x + 1.0 } else { x.exp() }
}
fn elu1_grad(x: f64) -> f64 {
    if x > 0.0 { 1.0 } else { x.exp() }
}

fn randn(rng: &mut StdRng, r: usize, c: usize, scale: f64) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |_, _| scale * rng.sample::<f64, _>(StandardNormal))
}

impl Layer {
    /// Dense layer with He-style initialisation `N(0, 2/n_in)`.
    pub fn linear(n_in: usize, n_out: usize, rng: &mut StdRng) -> Self {
        let w = randn(rng, n_out, n_in, (2.0 / n_in.max(1) as f64).sqrt());
        Self { kind: LayerKind::Linear, params: vec![w, DMatrix::zeros(n_out, 1)], n_in, n_out }
    }
    /// ReLU on `n` features.
    #[must_use]
    pub fn relu(n: usize) -> Self {
        Self { kind: LayerKind::Relu, params: vec![], n_in: n, n_out: n }
    }
    /// Batch norm on `n` features (`gamma = 1`, `beta = 0`, momentum 0.1).
    #[must_use]
    pub fn batch_norm(n: usize) -> Self {
        Self {
            kind: LayerKind::BatchNorm { running_mean: vec![0.0; n], running_var: vec![1.0; n], momentum: 0.1 },
            params: vec![DMatrix::from_element(n, 1, 1.0), DMatrix::zeros(n, 1)],
            n_in: n,
            n_out: n,
        }
    }
    /// Linear attention on `tokens` tokens of `patch` inputs, width `width`.
    pub fn linear_attention(tokens: usize, patch: usize, width: usize, rng: &mut StdRng) -> Self {
        let sd = (1.0 / width as f64).sqrt();
        Self {
            kind: LayerKind::LinearAttention { tokens, patch, width },
            params: vec![
                randn(rng, width, patch, (1.0 / patch as f64).sqrt()),
                randn(rng, width, tokens, 0.1),
                randn(rng, width, width, sd),
                randn(rng, width, width, sd),
                randn(rng, width, width, sd),
            ],
            n_in: tokens * patch,
            n_out: tokens * width,
        }
    }

    /// Checks the parameter count and shapes against the kind and `n_in`/`n_out`, and that
    /// every value is finite (what a layer read from a file must satisfy before use).
    pub fn check(&self) -> Result<()> {
        let shape_err = |what, expected, got| Err(SparseBpError::ShapeMismatch { what, expected, got });
        let mul = |a: usize, b: usize| a.saturating_mul(b);
        let (n_in, n_out) = (self.n_in, self.n_out);
        let want: Vec<(usize, usize)> = match &self.kind {
            LayerKind::Linear => vec![(n_out, n_in), (n_out, 1)],
            LayerKind::Relu => {
                if n_in != n_out {
                    return shape_err("relu layer (n_out, n_in)", (n_in, n_in), (n_out, n_in));
                }
                vec![]
            }
            LayerKind::BatchNorm { running_mean, running_var, momentum } => {
                if n_in != n_out {
                    return shape_err("batch-norm layer (n_out, n_in)", (n_in, n_in), (n_out, n_in));
                }
                if running_mean.len() != n_in || running_var.len() != n_in {
                    return shape_err(
                        "batch-norm running statistics",
                        (n_in, n_in),
                        (running_mean.len(), running_var.len()),
                    );
                }
                check_finite("batch-norm running mean", running_mean)?;
                check_finite("batch-norm running variance", running_var)?;
                if let Some(index) = running_var.iter().position(|&v| v < 0.0) {
                    return Err(SparseBpError::NonFinite { what: "batch-norm running variance (negative)", index });
                }
                if !(momentum.is_finite() && (0.0..=1.0).contains(momentum)) {
                    return Err(SparseBpError::NonFinite { what: "batch-norm momentum (in [0, 1])", index: 0 });
                }
                vec![(n_in, 1), (n_in, 1)]
            }
            LayerKind::LinearAttention { tokens, patch, width } => {
                let (t, p, d) = (*tokens, *patch, *width);
                if t == 0 || p == 0 || d == 0 {
                    return Err(SparseBpError::Empty { what: "attention layer (tokens, patch, width)" });
                }
                // inputs are zero-padded to `T p`: at most `T p`, and more than `(T - 1) p`
                if n_in > mul(t, p) || n_in <= mul(t - 1, p) || n_out != mul(t, d) {
                    return shape_err("attention layer (n_in, n_out)", (mul(t, p), mul(t, d)), (n_in, n_out));
                }
                vec![(d, p), (d, t), (d, d), (d, d), (d, d)]
            }
        };
        if self.params.len() != want.len() {
            return shape_err("layer parameter count", (want.len(), 1), (self.params.len(), 1));
        }
        for (m, &w) in self.params.iter().zip(&want) {
            if m.shape() != w {
                return shape_err("layer parameter", w, m.shape());
            }
            check_finite("layer parameter", m.as_slice())?;
        }
        Ok(())
    }

    fn forward(&mut self, x: &DMatrix<f64>, train: bool) -> (DMatrix<f64>, Cache) {
        match &mut self.kind {
            LayerKind::Linear => {
                let mut y = &self.params[0] * x;
                for mut c in y.column_iter_mut() {
                    c += self.params[1].column(0);
                }
                (y, Cache::Input(x.clone()))
            }
            LayerKind::Relu => (x.map(|v| v.max(0.0)), Cache::Input(x.clone())),
            LayerKind::BatchNorm { running_mean, running_var, momentum } => {
                let n = x.ncols() as f64;
                let f = x.nrows();
                let (mean, var): (Vec<f64>, Vec<f64>) = if train {
                    let mean: Vec<f64> = (0..f).map(|i| x.row(i).sum() / n).collect();
                    let var: Vec<f64> =
                        (0..f).map(|i| x.row(i).iter().map(|v| (v - mean[i]).powi(2)).sum::<f64>() / n).collect();
                    for i in 0..f {
                        running_mean[i] = (1.0 - *momentum) * running_mean[i] + *momentum * mean[i];
                        running_var[i] = (1.0 - *momentum) * running_var[i] + *momentum * var[i];
                    }
                    (mean, var)
                } else {
                    (running_mean.clone(), running_var.clone())
                };
                let inv_std = DVector::from_fn(f, |i, _| 1.0 / (var[i] + BN_EPS).sqrt());
                let xhat = DMatrix::from_fn(f, x.ncols(), |i, j| (x[(i, j)] - mean[i]) * inv_std[i]);
                let (g, b) = (&self.params[0], &self.params[1]);
                let y = DMatrix::from_fn(f, x.ncols(), |i, j| g[(i, 0)] * xhat[(i, j)] + b[(i, 0)]);
                (y, Cache::Bn { xhat, inv_std })
            }
            LayerKind::LinearAttention { tokens, patch, width } => {
                let (t, p, d) = (*tokens, *patch, *width);
                let mut out = DMatrix::zeros(t * d, x.ncols());
                let mut caches = Vec::with_capacity(x.ncols());
                for (j, col) in x.column_iter().enumerate() {
                    let u = DMatrix::from_fn(p, t, |a, b| col.get(b * p + a).copied().unwrap_or(0.0));
                    let c = attention_forward(&self.params, u);
                    let o = &c.h + &c.a;
                    out.column_mut(j).copy_from_slice(o.as_slice());
                    caches.push(c);
                }
                (out, Cache::Attention(caches))
            }
        }
    }

    /// Backward: given `dL/dy`, add `dL/dparams` into `grads` and return `dL/dx`.
    fn backward(&self, cache: &Cache, dy: &DMatrix<f64>, grads: &mut [DMatrix<f64>]) -> DMatrix<f64> {
        match (&self.kind, cache) {
            (LayerKind::Linear, Cache::Input(x)) => {
                grads[0] += dy * x.transpose();
                for c in dy.column_iter() {
                    grads[1] += &c;
                }
                self.params[0].tr_mul(dy)
            }
            (LayerKind::Relu, Cache::Input(x)) => dy.zip_map(x, |g, v| if v > 0.0 { g } else { 0.0 }),
            (LayerKind::BatchNorm { .. }, Cache::Bn { xhat, inv_std }) => {
                let n = dy.ncols() as f64;
                let g = &self.params[0];
                let mut dx = DMatrix::zeros(dy.nrows(), dy.ncols());
                for i in 0..dy.nrows() {
                    let mut sum_dy = 0.0;
                    let mut sum_dy_xhat = 0.0;
                    for j in 0..dy.ncols() {
                        sum_dy += dy[(i, j)];
                        sum_dy_xhat += dy[(i, j)] * xhat[(i, j)];
                    }
                    grads[0][(i, 0)] += sum_dy_xhat;
                    grads[1][(i, 0)] += sum_dy;
                    let k = g[(i, 0)] * inv_std[i] / n;
                    for j in 0..dy.ncols() {
                        dx[(i, j)] = k * (n * dy[(i, j)] - sum_dy - xhat[(i, j)] * sum_dy_xhat);
                    }
                }
                dx
            }
            (LayerKind::LinearAttention { tokens, patch, width }, Cache::Attention(caches)) => {
                let (t, p, d) = (*tokens, *patch, *width);
                let mut dx = DMatrix::zeros(self.n_in, dy.ncols());
                for (j, c) in caches.iter().enumerate() {
                    let dout = DMatrix::from_column_slice(d, t, dy.column(j).as_slice());
                    let du = attention_backward(&self.params, c, &dout, grads);
                    for b in 0..t {
                        for a in 0..p {
                            if b * p + a < self.n_in {
                                dx[(b * p + a, j)] = du[(a, b)];
                            }
                        }
                    }
                }
                dx
            }
            _ => unreachable!("cache kind always matches layer kind"),
        }
    }
}

fn attention_forward(params: &[DMatrix<f64>], u: DMatrix<f64>) -> AttnCache {
    let (we, pos, wq, wk, wv) = (&params[0], &params[1], &params[2], &params[3], &params[4]);
    let h = we * &u + pos;
    let q = wq * &h;
    let k = wk * &h;
    let v = wv * &h;
    let pq = q.map(elu1);
    let pk = k.map(elu1);
    let s = &v * pk.transpose();
    let z = DVector::from_fn(pk.nrows(), |i, _| pk.row(i).sum());
    let num = &s * &pq;
    let den = pq.tr_mul(&z);
    let a = DMatrix::from_fn(num.nrows(), num.ncols(), |i, j| num[(i, j)] / den[j]);
    AttnCache { u, h, q, k, v, pq, pk, s, z, den, a }
}

fn attention_backward(
    params: &[DMatrix<f64>],
    c: &AttnCache,
    dout: &DMatrix<f64>,
    grads: &mut [DMatrix<f64>],
) -> DMatrix<f64> {
    let (we, wq, wk, wv) = (&params[0], &params[2], &params[3], &params[4]);
    let t = dout.ncols();
    // A_i = num_i / den_i
    let dnum = DMatrix::from_fn(dout.nrows(), t, |i, j| dout[(i, j)] / c.den[j]);
    let dden = DVector::from_fn(t, |j, _| -dout.column(j).dot(&c.a.column(j)) / c.den[j]);
    // num = S pq, den = pq^T z
    let ds = &dnum * c.pq.transpose();
    let dpq = c.s.tr_mul(&dnum) + &c.z * dden.transpose();
    let dz = &c.pq * &dden;
    // S = V pk^T, z = pk 1
    let dv = &ds * &c.pk;
    let mut dpk = ds.tr_mul(&c.v);
    for mut col in dpk.column_iter_mut() {
        col += &dz;
    }
    let dq = dpq.zip_map(&c.q, |g, x| g * elu1_grad(x));
    let dk = dpk.zip_map(&c.k, |g, x| g * elu1_grad(x));
    grads[2] += &dq * c.h.transpose();
    grads[3] += &dk * c.h.transpose();
    grads[4] += &dv * c.h.transpose();
    let dh = dout + wq.tr_mul(&dq) + wk.tr_mul(&dk) + wv.tr_mul(&dv);
    grads[0] += &dh * c.u.transpose();
    grads[1] += &dh;
    we.tr_mul(&dh)
}

/// A sequence of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The layers, input first.
    pub layers: Vec<Layer>,
}

/// Values kept by [`Network::forward_train`] for [`Network::backward`].
#[derive(Debug, Clone)]
pub struct Tape(Vec<Cache>);

/// Gradients of every parameter, shaped like [`Layer::params`].
pub type ParamGrads = Vec<Vec<DMatrix<f64>>>;

fn param_count(n_in: usize, hidden: usize, n_out: usize) -> usize {
    n_in * hidden + hidden + hidden * hidden + hidden + hidden * n_out + n_out + 2 * n_out
}

impl Network {
    /// Checks that consecutive layers fit and builds the network.
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(SparseBpError::Empty { what: "network layers" });
        }
        for (i, w) in layers.windows(2).enumerate() {
            if w[0].n_out != w[1].n_in {
                return Err(SparseBpError::LayerMismatch { layer: i + 1, rows: w[1].n_in, expected: w[0].n_out });
            }
        }
        Ok(Self { layers })
    }

    /// Re-checks every layer ([`Layer::check`]) and that consecutive layers fit.
    pub fn check(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(SparseBpError::Empty { what: "network layers" });
        }
        for (i, l) in self.layers.iter().enumerate() {
            l.check()?;
            if i > 0 && self.layers[i - 1].n_out != l.n_in {
                return Err(SparseBpError::LayerMismatch {
                    layer: i,
                    rows: l.n_in,
                    expected: self.layers[i - 1].n_out,
                });
            }
        }
        Ok(())
    }

    /// One dense layer, batch norm, ReLU.
    pub fn dense(n_in: usize, n_out: usize, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        Self::new(vec![Layer::linear(n_in, n_out, &mut rng), Layer::batch_norm(n_out), Layer::relu(n_out)])
    }

    /// Three dense layers (`n_in -> h -> h -> n_out`, ReLU between), batch norm, ReLU;
    /// `h` is the smallest width whose parameter count reaches `target_params`.
    pub fn deep_dense(n_in: usize, n_out: usize, target_params: usize, seed: u64) -> Result<Self> {
        let mut h = 1;
        while param_count(n_in, h, n_out) < target_params && h < 4096 {
            h += 1;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        Self::new(vec![
            Layer::linear(n_in, h, &mut rng),
            Layer::relu(h),
            Layer::linear(h, h, &mut rng),
            Layer::relu(h),
            Layer::linear(h, n_out, &mut rng),
            Layer::batch_norm(n_out),
            Layer::relu(n_out),
        ])
    }

    /// Linear-attention block over `ceil(n_in / patch)` tokens, then a dense layer to
    /// `n_out`, batch norm, ReLU.
    pub fn linear_transformer(n_in: usize, n_out: usize, patch: usize, width: usize, seed: u64) -> Result<Self> {
        if patch == 0 || width == 0 {
            return Err(SparseBpError::InvalidParam { name: "patch/width", value: 0.0, expected: ">= 1" });
        }
        let tokens = n_in.div_ceil(patch);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut attn = Layer::linear_attention(tokens, patch, width, &mut rng);
        attn.n_in = n_in;
        Self::new(vec![
            attn,
            Layer::linear(tokens * width, n_out, &mut rng),
            Layer::batch_norm(n_out),
            Layer::relu(n_out),
        ])
    }

    /// Input length.
    #[must_use]
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in
    }
    /// Output length.
    #[must_use]
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out
    }
    /// Total number of parameters.
    #[must_use]
    pub fn num_params(&self) -> usize {
        self.layers.iter().flat_map(|l| l.params.iter()).map(DMatrix::len).sum()
    }

    fn check_input(&self, x: &DMatrix<f64>) -> Result<()> {
        if x.nrows() != self.n_in() {
            return Err(SparseBpError::ShapeMismatch {
                what: "network input",
                expected: (self.n_in(), x.ncols()),
                got: x.shape(),
            });
        }
        check_finite("network input", x.as_slice())
    }

    /// Evaluation-mode forward pass (batch norm with running statistics).
    pub fn forward(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.check_input(x)?;
        let mut net = self.clone();
        let mut h = x.clone();
        for l in &mut net.layers {
            h = l.forward(&h, false).0;
        }
        Ok(h)
    }

    /// Training-mode forward pass (batch statistics; updates running statistics).
    pub fn forward_train(&mut self, x: &DMatrix<f64>) -> Result<(DMatrix<f64>, Tape)> {
        self.check_input(x)?;
        let mut h = x.clone();
        let mut tape = Vec::with_capacity(self.layers.len());
        for l in &mut self.layers {
            let (y, c) = l.forward(&h, true);
            tape.push(c);
            h = y;
        }
        Ok((h, Tape(tape)))
    }

    /// Zero gradients shaped like the parameters.
    #[must_use]
    pub fn zero_grads(&self) -> ParamGrads {
        self.layers.iter().map(|l| l.params.iter().map(|p| DMatrix::zeros(p.nrows(), p.ncols())).collect()).collect()
    }

    /// Backward pass of the last [`Network::forward_train`]: adds `dL/dparams` into
    /// `grads` and returns `dL/dx`.
    pub fn backward(&self, tape: &Tape, dy: &DMatrix<f64>, grads: &mut ParamGrads) -> Result<DMatrix<f64>> {
        if dy.nrows() != self.n_out() {
            return Err(SparseBpError::ShapeMismatch {
                what: "output gradient",
                expected: (self.n_out(), dy.ncols()),
                got: dy.shape(),
            });
        }
        let mut g = dy.clone();
        for ((l, c), gr) in self.layers.iter().zip(&tape.0).zip(grads.iter_mut()).rev() {
            g = l.backward(c, &g, gr);
        }
        Ok(g)
    }
}

/// Adam (Kingma & Ba 2015) over a list of parameter groups.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    m: Vec<DMatrix<f64>>,
    v: Vec<DMatrix<f64>>,
    t: i32,
}

impl Adam {
    /// Adam with the usual defaults (`0.9`, `0.999`, `1e-8`).
    #[must_use]
    pub fn new(lr: f64) -> Self {
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, m: Vec::new(), v: Vec::new(), t: 0 }
    }

    /// One step on `params` (flattened list) with gradients `grads` (same shapes).
    pub fn step<'a>(&mut self, params: impl Iterator<Item = &'a mut DMatrix<f64>>, grads: &[&DMatrix<f64>]) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for (i, p) in params.enumerate() {
            let g = grads[i];
            if self.m.len() <= i {
                self.m.push(DMatrix::zeros(g.nrows(), g.ncols()));
                self.v.push(DMatrix::zeros(g.nrows(), g.ncols()));
            }
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for k in 0..g.len() {
                m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                p[k] -= self.lr * (m[k] / c1) / ((v[k] / c2).sqrt() + self.eps);
            }
        }
    }

    /// One step on every parameter of `net`.
    pub fn step_network(&mut self, net: &mut Network, grads: &ParamGrads) {
        let flat: Vec<&DMatrix<f64>> = grads.iter().flatten().collect();
        self.step(net.layers.iter_mut().flat_map(|l| l.params.iter_mut()), &flat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(y: &DMatrix<f64>, r: &DMatrix<f64>) -> f64 {
        y.component_mul(r).sum()
    }

    /// Central finite differences of `L = sum(r .* net(x))` (training mode) against
    /// the hand-written backward pass, for inputs and every parameter.
    #[allow(clippy::needless_range_loop)] // index-based perturbation is the point here
    fn grad_check(mut net: Network, n_in: usize, batch: usize) {
        let mut rng = StdRng::seed_from_u64(7);
        let x = randn(&mut rng, n_in, batch, 1.0);
        let r = randn(&mut rng, net.n_out(), batch, 1.0);
        let (y, tape) = net.clone().forward_train(&x).unwrap();
        let mut grads = net.zero_grads();
        let dx = net.backward(&tape, &r, &mut grads).unwrap();
        let _ = y;
        let h = 1e-6;
        let f = |n: &Network, x: &DMatrix<f64>| loss(&n.clone().forward_train(x).unwrap().0, &r);
        let mut worst: f64 = 0.0;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (f(&net, &xp) - f(&net, &xm)) / (2.0 * h);
            worst = worst.max((fd - dx[i]).abs() / (1.0 + fd.abs()));
        }
        assert!(worst < 1e-5, "input gradient error {worst}");
        for li in 0..net.layers.len() {
            for pi in 0..net.layers[li].params.len() {
                for k in 0..net.layers[li].params[pi].len() {
                    let orig = net.layers[li].params[pi][k];
                    net.layers[li].params[pi][k] = orig + h;
                    let fp = f(&net, &x);
                    net.layers[li].params[pi][k] = orig - h;
                    let fm = f(&net, &x);
                    net.layers[li].params[pi][k] = orig;
                    let fd = (fp - fm) / (2.0 * h);
                    let e = (fd - grads[li][pi][k]).abs() / (1.0 + fd.abs());
                    assert!(e < 1e-5, "layer {li} param {pi}[{k}]: fd {fd} vs {}", grads[li][pi][k]);
                }
            }
        }
    }

    #[test]
    fn dense_gradient_matches_finite_differences() {
        grad_check(Network::dense(5, 3, 1).unwrap(), 5, 6);
    }

    #[test]
    fn deep_dense_gradient_matches_finite_differences() {
        grad_check(Network::deep_dense(5, 3, 80, 2).unwrap(), 5, 6);
    }

    #[test]
    fn linear_transformer_gradient_matches_finite_differences() {
        // 7 inputs in tokens of 3: the last token is zero-padded.
        grad_check(Network::linear_transformer(7, 3, 3, 4, 3).unwrap(), 7, 5);
    }

    #[test]
    fn shape_and_nan_errors() {
        let net = Network::dense(4, 2, 0).unwrap();
        assert!(matches!(net.forward(&DMatrix::zeros(3, 2)), Err(SparseBpError::ShapeMismatch { .. })));
        let mut x = DMatrix::zeros(4, 2);
        x[(1, 1)] = f64::NAN;
        assert!(matches!(net.forward(&x), Err(SparseBpError::NonFinite { index: 5, .. })));
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut p = DMatrix::from_element(2, 1, 3.0);
        let mut adam = Adam::new(0.1);
        for _ in 0..500 {
            let g = p.clone();
            adam.step(std::iter::once(&mut p), &[&g]);
        }
        assert!(p.norm() < 1e-2);
    }
}

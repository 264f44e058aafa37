// ClipGrad: Julia's clamp to [lo, hi] (NaN passes through). P = [lo, hi]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    if (g > p(1u)) { return p(1u); }
    if (g < p(0u)) { return p(0u); }
    return g;
}

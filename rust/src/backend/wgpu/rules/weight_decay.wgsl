// WeightDecay: dx′ = g + λ·x. P = [λ]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    return g + p(0u) * x;
}

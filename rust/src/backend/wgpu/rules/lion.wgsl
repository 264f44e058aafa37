// Lion: m ← β₂·g + (1−β₂)·m; dx′ = η·sign((β₂−β₁)·g + β₁·m).
// P = [η, β₁, β₂, 1−β₂, β₂−β₁]; s = [m]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    (*s)[0] = p(2u) * g + p(3u) * (*s)[0];
    return p(0u) * jsign(p(4u) * g + p(1u) * (*s)[0]);
}

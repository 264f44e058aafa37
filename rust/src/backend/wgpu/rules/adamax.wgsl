// AdaMax: m ← β₁·m + (1−β₁)·g; u ← max(β₂·u, |g|); dx′ = η/(1−β₁ᵗ)·m / (u + ϵ).
// P = [β₁, β₂, 1−β₁, η/(1−β₁ᵗ), ϵ]; s = [m, u]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    (*s)[0] = p(0u) * (*s)[0] + p(2u) * g;
    (*s)[1] = jmax(p(1u) * (*s)[1], abs(g));
    return p(3u) * (*s)[0] / ((*s)[1] + p(4u));
}

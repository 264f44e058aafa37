// AdaBelief: m ← β₁·m + (1−β₁)·g; s ← β₂·s + (1−β₂)·(g − m)² + ϵ;
// dx′ = η·m/c₁ / (√(s/c₂) + ϵ). P = [β₁, β₂, c₁, c₂, η, ϵ]; s = [m, s]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let b1 = p(0u);
    let b2 = p(1u);
    let eps = p(5u);
    (*s)[0] = b1 * (*s)[0] + (1.0 - b1) * g;
    let d = g - (*s)[0];
    (*s)[1] = b2 * (*s)[1] + (1.0 - b2) * (d * d) + eps;
    return p(4u) * (*s)[0] / p(2u) / (sqrt((*s)[1] / p(3u)) + eps);
}

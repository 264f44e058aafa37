// RAdam: Adam's moments; dx′ = m/c₁·r/(√(v/c₂) + ϵ)·η when rectified (P[6] = 1),
// else the momentum step m/c₁·η. P = [β₁, β₂, c₁, c₂, η, ϵ, rectified, r]; s = [m, v]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let b1 = p(0u);
    let b2 = p(1u);
    (*s)[0] = b1 * (*s)[0] + (1.0 - b1) * g;
    (*s)[1] = b2 * (*s)[1] + (1.0 - b2) * (g * g);
    if (p(6u) > 0.0) {
        return (*s)[0] / p(2u) * p(7u) / (sqrt((*s)[1] / p(3u)) + p(5u)) * p(4u);
    }
    return (*s)[0] / p(2u) * p(4u);
}

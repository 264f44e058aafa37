// OAdam (optimistic Adam): term ← η·m/c₁ / (√(v/c₂) + ϵ); dx′ = 2·term − previous term.
// P = [β₁, β₂, c₁, c₂, η, ϵ]; s = [m, v, term]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let b1 = p(0u);
    let b2 = p(1u);
    (*s)[0] = b1 * (*s)[0] + (1.0 - b1) * g;
    (*s)[1] = b2 * (*s)[1] + (1.0 - b2) * (g * g);
    let prev = (*s)[2];
    (*s)[2] = p(4u) * (*s)[0] / p(2u) / (sqrt((*s)[1] / p(3u)) + p(5u));
    return 2.0 * (*s)[2] - prev;
}

// AdamW: Adam's direction a (learning rate 1), then dx′ = η·(a + λ·x) when coupled
// (P[7] = 1), else η·a + λ·x. P = [β₁, β₂, c₁, c₂, η, ϵ, λ, couple]; s = [m, v]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let b1 = p(0u);
    let b2 = p(1u);
    (*s)[0] = b1 * (*s)[0] + (1.0 - b1) * g;
    (*s)[1] = b2 * (*s)[1] + (1.0 - b2) * (g * g);
    let a = (*s)[0] / p(2u) / (sqrt((*s)[1] / p(3u)) + p(5u));
    if (p(7u) > 0.0) {
        return p(4u) * (a + p(6u) * x);
    }
    return p(4u) * a + p(6u) * x;
}

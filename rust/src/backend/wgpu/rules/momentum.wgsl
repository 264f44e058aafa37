// Momentum: v ← ρ·v + η·g; dx′ = v. P = [η, ρ]; s = [v]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let eta = p(0u);
    let rho = p(1u);
    (*s)[0] = rho * (*s)[0] + eta * g;
    return (*s)[0];
}

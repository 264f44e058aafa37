// Nesterov: dx′ = −ρ²·v + (1+ρ)·η·g; v ← ρ·v − η·g. P = [η, ρ, −ρ², (1+ρ)·η]; s = [v]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let eta = p(0u);
    let rho = p(1u);
    let d = p(2u) * (*s)[0] + p(3u) * g;
    (*s)[0] = rho * (*s)[0] - eta * g;
    return d;
}

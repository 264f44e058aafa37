// AdaDelta: acc ← ρ·acc + (1−ρ)·g²; dx′ = g·√(Δacc + ϵ)/√(acc + ϵ);
// Δacc ← ρ·Δacc + (1−ρ)·dx′². P = [ρ, ϵ, 1−ρ]; s = [acc, Δacc]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let rho = p(0u);
    let eps = p(1u);
    let r = p(2u);
    (*s)[0] = rho * (*s)[0] + r * (g * g);
    let d = g * sqrt((*s)[1] + eps) / sqrt((*s)[0] + eps);
    (*s)[1] = rho * (*s)[1] + r * (d * d);
    return d;
}

// RMSProp: s ← ρ·s + (1−ρ)·g²; dx′ = g·η / (√s + ϵ). P = [η, ρ, ϵ, 1−ρ]; s = [s]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let rho = p(1u);
    (*s)[0] = rho * (*s)[0] + p(3u) * (g * g);
    return g * p(0u) / (sqrt((*s)[0]) + p(2u));
}

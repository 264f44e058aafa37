// Centred RMSProp: also c ← ρ·c + (1−ρ)·g; dx′ = g·η / (√(s − c²) + ϵ).
// P = [η, ρ, ϵ, 1−ρ]; s = [s, c]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let rho = p(1u);
    let r1 = p(3u);
    (*s)[0] = rho * (*s)[0] + r1 * (g * g);
    (*s)[1] = rho * (*s)[1] + r1 * g;
    return g * p(0u) / (sqrt((*s)[0] - (*s)[1] * (*s)[1]) + p(2u));
}

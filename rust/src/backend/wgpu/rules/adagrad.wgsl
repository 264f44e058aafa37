// AdaGrad: acc ← acc + g²; dx′ = g·η / (√acc + ϵ). P = [η, ϵ]; s = [acc]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    (*s)[0] = (*s)[0] + g * g;
    return g * p(0u) / (sqrt((*s)[0]) + p(1u));
}

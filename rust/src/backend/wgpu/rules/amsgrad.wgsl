// AMSGrad: Adam's moments without bias correction; v̂ ← max(v̂, v);
// dx′ = η·m / (√v̂ + ϵ). P = [β₁, β₂, η, ϵ]; s = [m, v, v̂]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let b1 = p(0u);
    let b2 = p(1u);
    (*s)[0] = b1 * (*s)[0] + (1.0 - b1) * g;
    (*s)[1] = b2 * (*s)[1] + (1.0 - b2) * (g * g);
    (*s)[2] = jmax((*s)[2], (*s)[1]);
    return p(2u) * (*s)[0] / (sqrt((*s)[2]) + p(3u));
}

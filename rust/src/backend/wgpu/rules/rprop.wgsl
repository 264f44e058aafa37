// Rprop: the step size grows (×ℓ₂, up to Γmax) while g keeps its sign and shrinks
// (×ℓ₁, down to Γmin) when it flips. P = [ℓ₁, ℓ₂, Γmin, Γmax]; s = [previous g, step]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let q = (*s)[0] * g;
    if (q > 0.0) {
        (*s)[1] = jmin((*s)[1] * p(1u), p(3u));
    } else if (q < 0.0) {
        (*s)[1] = jmax((*s)[1] * p(0u), p(2u));
    }
    (*s)[0] = select(g, 0.0, q < 0.0);
    return (*s)[1] * jsign((*s)[0]);
}

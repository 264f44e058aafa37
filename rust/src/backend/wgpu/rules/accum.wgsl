// AccumGrad: a ← g/n on the first call of a round (p(1) = 1), else a + g/n; dx′ = a
// (the step on the round's last call; the calls before it keep only the state).
// P = [n, first]
fn rule(x: f32, g: f32, s: ptr<function, array<f32, K>>) -> f32 {
    let n = p(0u);
    if (p(1u) > 0.0) {
        (*s)[0] = g / n;
    } else {
        (*s)[0] = (*s)[0] + g / n;
    }
    return (*s)[0];
}

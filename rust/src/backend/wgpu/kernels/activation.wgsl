// The activations and their derivatives, shared by the unary kernels and the recurrent
// cells' kernels. The op is the override OP (codes in elementwise.rs's unary_code).
override OP: u32 = 0u;

fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 { return 1.0 / (1.0 + exp(-v)); }
    let e = exp(v);
    return e / (1.0 + e);
}
// e^v - 1 without the cancellation of exp(v) - 1 near 0
fn expm1(v: f32) -> f32 {
    if abs(v) < 0.1 { return v * (1.0 + v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0 + v / 120.0)))); }
    return exp(v) - 1.0;
}
// log(1 + t) for t >= 0 without the rounding of 1 + t near 0
fn log1p(t: f32) -> f32 {
    if t < 0.01 { return t * (1.0 - t * (0.5 - t * (1.0 / 3.0 - t * 0.25))); }
    return log(1.0 + t);
}
// tanh, saturated where |v| > 10 (some drivers give NaN from exp overflow there)
fn tanh_(v: f32) -> f32 {
    if abs(v) > 10.0 { return sign(v); }
    return tanh(v);
}
const GELU_C: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;
fn gelu_gate(v: f32) -> f32 { return 1.0 / (1.0 + exp(-2.0 * GELU_C * (v + GELU_A * v * v * v))); }

fn fwd(v: f32, a: f32, b: f32) -> f32 {
    switch OP {
        case 0u: { return -v; }
        case 1u: { return exp(v); }
        case 2u: { return log(v); }
        case 3u: { return sqrt(v); }
        case 4u: { return abs(v); }
        case 5u: { return tanh_(v); }
        case 6u: { return sigmoid(v); }
        case 7u: { return select(v, 0.0, v < 0.0); }
        case 8u: { return select(a * v, v, v > 0.0); }
        case 9u: { return select(a * expm1(v), v, v >= 0.0); }
        case 10u: { return v * gelu_gate(v); }
        case 11u: { return v * sigmoid(v); }
        case 12u: { return max(v, 0.0) + log1p(exp(-abs(v))); }
        case 13u: { return v * v; }
        case 14u: { return select(select(v * 0.0, -1.0, v < 0.0), 1.0, v > 0.0); }
        case 15u: { return a * v + b; }
        case 16u: { return min(max(v, a), b); }
        case 17u: { return pow(v, a); }
        case 18u: { return a / v; }
        case 19u: { return max(v, a); }
        case 20u: { return min(v, a); }
        case 21u: { return sin(v); }
        case 22u: { return cos(v); }
        default: { return v; }
    }
}

// dy/dx from x and y = f(x)
fn deriv(v: f32, o: f32, a: f32) -> f32 {
    switch OP {
        case 0u: { return -1.0; }
        case 1u: { return o; }
        case 2u: { return 1.0 / v; }
        case 3u: { return 0.5 / o; }
        case 4u: { return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0); }
        case 5u: { return 1.0 - o * o; }
        case 6u: { return o * (1.0 - o); }
        case 7u: { return select(0.0, 1.0, v > 0.0); }
        case 8u: { return select(a, 1.0, v > 0.0); }
        case 9u: { return select(o + a, 1.0, v >= 0.0); }
        case 10u: {
            let s = gelu_gate(v);
            return s + v * s * (1.0 - s) * 2.0 * GELU_C * (1.0 + 3.0 * GELU_A * v * v);
        }
        case 11u: { let s = sigmoid(v); return s + v * s * (1.0 - s); }
        case 12u: { return sigmoid(v); }
        case 13u: { return 2.0 * v; }
        default: { return 0.0; }
    }
}


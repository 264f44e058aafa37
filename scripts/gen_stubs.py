"""Write python/flux_rs/_core.pyi from the compiled module, so the stubs always list
exactly what `_core` exports with its real signatures and whole docstrings.
tests/test_stubs.py fails when the checked-in file differs from what this prints, and
runs `mypy.stubtest` on it; rerun this after changing bindings:

    python scripts/gen_stubs.py > python/flux_rs/_core.pyi

Parameter types come from PARAM_TYPES (a name means the same type everywhere in the
bindings), return types from RETURNS; a binding missing from RETURNS fails the test.
"""
import inspect
import sys

import flux_rs._core as core

# parameter names that always mean the same type in the bindings
PARAM_TYPES = {
    "x": "_TensorLike", "t": "Tensor", "a": "_TensorLike", "b": "_TensorLike", "y": "_TensorLike",
    "yhat": "_TensorLike", "w": "Tensor", "src": "Any", "dst": "Any", "loss": "Tensor", "dtype": "Any",
    "name": "str", "shape": "Sequence[int]", "rng": "Rng", "params": "Sequence[Tensor]",
    "ts": "Sequence[_TensorLike]", "seed": "int", "n": "int", "idx": "Any", "path": "str", "dim": "int",
    "p": "float", "q": "_TensorLike", "k": "_TensorLike", "v": "_TensorLike", "nheads": "int",
    "dropout": "float", "train": "bool", "omega": "float", "throw": "bool", "keepdims": "bool",
    "dims": "Any", "agg": "str", "eps": "float", "param": "float", "gain": "float", "mean": "float",
    "std": "float", "lo": "float", "hi": "float", "sparsity": "float", "shift": "float", "value": "Any",
    "mode": "str", "r": "int", "log": "bool", "alpha": "float", "msg": "str", "rule": "Any", "state": "Any",
    "g": "Any", "check_form": "bool", "frozen": "bool", "data": "Any", "fields": "Any", "values": "Any",
    "key": "Any", "o": "Any", "perm": "int", "batchsize": "int", "partial": "bool", "rank": "int",
    "size": "Any", "order": "Sequence[int]", "align_corners": "bool", "sizes": "Sequence[int]", "axis": "int",
    "window": "Sequence[int]", "stride": "Sequence[int]", "pad_lo": "Sequence[int]", "pad_hi": "Sequence[int]",
    "dilation": "Sequence[int]", "groups": "int", "out_pad": "Sequence[int]", "act": "str", "tensors": "Any",
    "metadata": "dict[str, str]", "labels": "Any", "cond": "_TensorLike", "f": "Callable[..., Any]",
    "args": "tuple[Any, ...]", "grads": "Any", "tree": "Any", "model": "Any", "leaves": "Sequence[Leaf]",
    "xs": "Sequence[Tensor]", "gs": "Sequence[Any]", "bias": "_TensorLike", "mask": "_TensorLike",
    "mod": "Any", "copy": "bool", "_memo": "Any", "c": "int", "cap_bytes": "int", "i": "int", "out": "Any",
    "scale": "float", "scales": "Sequence[float]", "s": "Tensor", "ys": "Sequence[_TensorLike]",
}
for _w in ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"):
    PARAM_TYPES[_w] = "Tensor"
PARAM_TYPES.update({"wi": "Tensor", "wh": "Tensor", "kind": "str", "step": "bool"})  # recurrent
PARAM_TYPES.update({"weight": "Tensor", "members": "Sequence[tuple[Tensor, Tensor | None]]", "load_from": "str",
                    "save_to": "str"})  # test hooks
ATTN = "tuple[Tensor, Tensor]"
T = "Tensor"
# every function's and method's return type ("Class.name" for methods and properties)
RETURNS = {
    "_panic_for_test": "None", "_gpu_unavailable_reason": "str | None", "_gpu_reads": "tuple[int, int]", "gpu_available": "bool", "alpha_dropout": T, "assign_": "None", "cat": T, "clamp": T,
    "clip_global_norm_": "float", "conv": T, "conv_transpose": T, "conv_transpose_layer": T, "scale_layer": T,
    "bilinear_layer": T, "maxout": T, "ctc_loss": T, "dense": T,
    "dot_product_attention": ATTN, "dropout": T, "full": T, "gather_bytes": "None", "gather_rows": T,
    "gather_tensor": T, "init": T, "is_recording": "bool", "label_smoothing": T,
    "load_safetensors": "tuple[list[tuple[str, Tensor]], dict[str, str], bool]", "loss": T, "maximum": T,
    "minimum": T, "multihead_attention": ATTN, "normalize": "tuple[Tensor, Tensor, Tensor]", "onehot": T,
    "pixel_shuffle": T, "pool": T, "recurrent": "tuple[Tensor, Any]", "rule_apply": "tuple[Any, Tensor | None]",
    "rule_defaults": "dict[str, dict[str, Any]]", "rule_init": "Any", "save_safetensors": "None",
    "scatter_add": T, "seed": "None", "shard_batches": "list[list[int]]", "softmax": T,
    "split": "list[Tensor]", "stack": T, "tape_abort": "None", "tape_finish": "list[Tensor | None]",
    "tape_start": "None", "tensor": T, "unary": T, "update_many": "None", "update_tree": "None",
    "upsample": T, "value_and_grad": "tuple[Any, tuple[Any, ...]]", "where_": T,
    "Buckets.dtypes": "list[str]", "Buckets.sizes": "list[int]", "Buckets.members": "list[list[int]]",
    "Buckets.pack": "None", "Buckets.unpack": "None",
    "Leaf._copy": "Leaf", "Leaf._to_device_": "None", "Leaf.frozen": "bool", "Leaf.rule": "Any", "Leaf.state": "Any",
    "Node.__dir__": "list[str]", "Node.__getitem__": "Any", "Node.__iter__": "Iterator[Any]",
    "Node.__reduce__": "tuple[Any, ...]", "Node._asdict": "dict[str, Any]", "Node._fields": "tuple[str, ...]",
    "Node._name": "str", "Node._values": "tuple[Any, ...]", "Node.__getattr__": "Any",
    "Rng._getstate": "tuple[str, int, str]", "Rng.permutation": "list[int]", "Rng._fromstate": "Rng",
    "RuleCore.describe": "str", "RuleCore.fields": "list[tuple[str, Any]]", "RuleCore.name": "str",
    "RuleCore.python": "RuleCore",
    "Tensor.T": T, "Tensor._to_device_": "None", "Tensor.device": "str", "Tensor.argmax": "np.ndarray[Any, Any]", "Tensor.dtype": "np.dtype[Any]",
    "Tensor.item": "float", "Tensor.ndim": "int", "Tensor.numpy": "np.ndarray[Any, Any]",
    "Tensor.shape": "tuple[int, ...]", "Tensor.size": "int", "Tensor.tolist": "Any",
    "Tensor.__array__": "np.ndarray[Any, Any]", "Tensor.__reduce__": "tuple[Any, ...]",
    "batchnorm": T, "instancenorm": T, "groupnorm": T, "layernorm": T, "embedding": T,
    "_module_forward": "tuple[Tensor, Tensor | None, Tensor | None]", "_misc_forward": T,
}
RETURNS.update({f"Node.{c}": "bool" for c in ("__lt__", "__le__", "__gt__", "__ge__")})
# dunders whose type follows from their protocol
DUNDER_RETURNS = {"__len__": "int", "__hash__": "int", "__bool__": "bool", "__float__": "float", "__repr__": "str",
                  "__eq__": "bool", "__ne__": "bool"}
# dunders of the bindings' own (object's are left to typeshed)
SKIP = {"__doc__", "__module__", "__new__", "__dict__", "__weakref__", "__getattribute__", "__setattr__",
        "__delattr__", "__init__", "__text_signature__"}
OBJECT_EQ = {"__eq__", "__ne__", "__hash__"}


def annotation(name: str, default) -> str:
    ann = PARAM_TYPES.get(name.lstrip("*"), "Any")
    if default is None and ann != "Any":
        ann += " | None"
    return ann


def params(o, drop_self: bool) -> str:
    try:
        sig = inspect.signature(o)
    except (ValueError, TypeError):
        return "self, *args: Any, **kwargs: Any" if drop_self else "*args: Any, **kwargs: Any"
    out, seen_kwonly, posonly = [], False, False
    ps = list(sig.parameters.values())
    if drop_self:  # a method: its runtime signature starts with self
        out.append("self")
        posonly = bool(ps) and ps[0].kind is inspect.Parameter.POSITIONAL_ONLY
        ps = ps[1:]
        if posonly and not (ps and ps[0].kind is inspect.Parameter.POSITIONAL_ONLY):
            out.append("/")
            posonly = False
    for p in ps:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            out.append(f"*{p.name}: {annotation(p.name, inspect.Parameter.empty)}")
            seen_kwonly = True
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            out.append(f"**{p.name}: Any")
            continue
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not seen_kwonly:
            out.append("*")
            seen_kwonly = True
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            posonly = True
        elif posonly:
            out.append("/")
            posonly = False
        has_default = p.default is not inspect.Parameter.empty
        out.append(f"{p.name}: {annotation(p.name, p.default if has_default else 0)}" + (" = ..." if has_default else ""))
    if posonly:
        out.append("/")
    return ", ".join(out)


def doc(o, indent: str) -> str:
    d = inspect.getdoc(o) or ""
    if not d.strip() or d == inspect.getdoc(object) or type(o).__doc__ == o.__doc__:
        return ""
    d = d.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = "\n".join((indent + line) if line else "" for line in d.splitlines())
    return f'{indent}"""{body.lstrip()}\n{indent}"""\n' if "\n" in d else f'{indent}"""{d}"""\n'


def ret(key: str, attr: str) -> str:
    if key in RETURNS:
        return RETURNS[key]
    if attr in DUNDER_RETURNS:
        return DUNDER_RETURNS[attr]
    if key.startswith("Tensor."):
        return "Tensor"  # arithmetic, reductions, elementwise functions and comparisons
    raise KeyError(f"gen_stubs: no return type for {key}; add it to RETURNS")


def method(cls: str, attr: str, v, w) -> None:
    key = f"{cls}.{attr}"
    if isinstance(v, staticmethod):
        w(f"    @staticmethod\n    def {attr}({params(v.__func__, False)}) -> {ret(key, attr)}:\n")
        w(doc(v.__func__, "        ") or "        ...\n")
        return
    if attr in OBJECT_EQ:
        w(f"    def {attr}(self{', other: object, /' if attr != '__hash__' else ''}) -> {ret(key, attr)}: ...\n")
        return
    w(f"    def {attr}({params(v, True)}) -> {ret(key, attr)}:")
    d = "" if type(v).__name__ == "wrapper_descriptor" else doc(v, "        ")  # slots: "Return self+value."
    w(f"\n{d}" if d else " ...\n")


def klass(name: str, o: type, w) -> None:
    if not o.__flags__ & (1 << 10):  # Py_TPFLAGS_BASETYPE: a pyclass without `subclass`
        w("@final\n")
    w(f"class {name}:\n")
    w(doc(o, "    "))
    if o.__text_signature__ is not None:  # pyo3's #[new] is __new__
        p = params(o, False)
        w(f"    def __new__(cls{', ' + p if p else ''}) -> {name}: ...\n")
    for attr, v in sorted(vars(o).items()):
        if attr in SKIP:
            continue
        key = f"{name}.{attr}"
        if inspect.isdatadescriptor(v):
            w(f"    @property\n    def {attr}(self) -> {ret(key, attr)}:")
            d = doc(v, "        ")
            w(f"\n{d}" if d else " ...\n")
            if getattr(v, "__set__", None) is not None and attr in ("frozen", "rule", "state"):
                w(f"    @{attr}.setter\n    def {attr}(self, value: {ret(key, attr)}) -> None: ...\n")
        elif isinstance(v, staticmethod) or callable(v):
            method(name, attr, v, w)
        else:
            w(f"    {attr}: {type(v).__name__ if v is not None else 'None'}\n")
    if name == "Node":  # fields by attribute (``grads.layers``), through __getattribute__
        w("    def __getattr__(self, name: str) -> Any: ...\n")
    w("\n")


def main(out=sys.stdout):
    w = out.write
    w('"""Type stubs of the compiled module (generated by scripts/gen_stubs.py; do not edit)."""\n')
    w("from typing import Any, Callable, Iterator, Sequence, final\n\nimport numpy as np\n\n")
    w("_TensorLike = Tensor | np.ndarray[Any, Any] | float | int | Sequence[Any]\n\n__version__: str\n")
    w(f"__all__ = {sorted(core.__all__)!r}\n\n")
    for name in sorted(n for n in dir(core) if not n.startswith("__")):  # noqa: C901
        o = getattr(core, name)
        if isinstance(o, type):
            klass(name, o, w)
        elif callable(o):
            w(f"def {name}({params(o, False)}) -> {ret(name, name)}:\n{doc(o, '    ') or '    ...'}\n")
        else:
            w(f"{name}: Any\n")


if __name__ == "__main__":
    main()

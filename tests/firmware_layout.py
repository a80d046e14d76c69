"""The firmware files in the agreed layout of issue 19, for tests and checks of the
project templates while the emitter still writes main's layout."""

from __future__ import annotations

NAME = "digits_cnn"
CAMEL = "DigitsCnn"
LABELS = [str(d) for d in range(10)]


def agreed_layout(old: dict[str, str], name: str = NAME, camel: str = CAMEL) -> dict[str, str]:
    """Main's firmware files renamed to the agreed layout of issue 19, with a labels
    header; used as is once render() writes that layout itself."""
    if f"model_{name}.h" in old:
        return dict(old)
    renames = {
        "model_data.h": f"model_{name}.h",
        "model_data.cc": f"model_{name}.cc",
        "model_ops.h": f"ops_{name}.h",
        "model_config.h": f"config_{name}.h",
    }
    words = [
        *renames.items(),
        ("g_final_int8_model_data", f"g_{name}_model_data"),
        ("FinalInt8OpResolver", f"{name}_OpResolver"),
        ("RegisterFinalInt8Ops", f"{name}_RegisterOps"),
        ("kFinalInt8", f"k{camel}"),
        ("EDGEPRUNE_FINAL_INT8", f"EDGEPRUNE_{name.upper()}"),
    ]
    out = {}
    for file, text in old.items():
        if "/" in file:
            continue  # the old sketch folder
        for before, after in words:
            text = text.replace(before, after)
        out[renames.get(file, file)] = text
    quoted = "".join(f'    "{x}",\n' for x in LABELS)
    guard = f"EDGEPRUNE_{name.upper()}_LABELS_H_"
    out[f"labels_{name}.h"] = (
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"// k{camel}Labels[i] names output value i.\n"
        f"constexpr int k{camel}LabelCount = {len(LABELS)};\n"
        f"constexpr const char* k{camel}Labels[k{camel}LabelCount] = {{\n{quoted}}};\n\n"
        f"#endif  // {guard}\n"
    )
    return out

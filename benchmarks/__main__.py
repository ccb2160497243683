"""``python -m benchmarks``: list the benchmarks (each is run as its own module)."""

import pkgutil

import benchmarks

print("benchmarks (run each with: python -m benchmarks.<name>):")
for module in pkgutil.iter_modules(benchmarks.__path__):
    if module.name not in ("common", "__main__", "faust_baseline"):
        print(f"  {module.name}")

#!/usr/bin/env python3
"""Fails when Package.swift and the code disagree about a target's dependencies.

For every target of the package: each module a Swift file imports must be a declared
dependency of that target (not merely reachable through another one), and each declared
dependency must be imported by at least one of its files. SwiftPM's own
`--explicit-target-dependency-import-check` accepts modules reachable transitively, which
is how an undeclared import slipped in before; this check is the strict one.

Usage: scripts/check-imports.py   (from the package root; prints problems, exits 1 if any)
"""

import json
import os
import re
import subprocess
import sys

# Modules that come with the toolchain or the system, never declared in Package.swift.
TOOLCHAIN_MODULES = {
    "Foundation", "FoundationEssentials", "Glibc", "Darwin", "Dispatch", "Synchronization",
    "XCTest", "Testing", "_Concurrency", "Swift", "os", "Musl",
}

IMPORT = re.compile(
    r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:package|internal|private|fileprivate|public)\s+)?"
    r"import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?(\w+)"
)


def declared_dependencies(target, products_of):
    names = set()
    for dependency in target["dependencies"]:
        if "byName" in dependency:
            names.add(dependency["byName"][0])
        elif "target" in dependency:
            names.add(dependency["target"][0])
        elif "product" in dependency:
            product, package = dependency["product"][0], dependency["product"][1]
            names.update(products_of.get((package, product), {product}))
    return names


def imported_modules(directory):
    modules = {}
    for root, _, files in os.walk(directory):
        for name in sorted(files):
            if not name.endswith(".swift"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as source:
                for line in source:
                    match = IMPORT.match(line)
                    if match:
                        modules.setdefault(match.group(1), path)
    return modules


def main():
    package = json.loads(subprocess.check_output(["swift", "package", "dump-package"], text=True))
    # A product usually names one module of the same name; the exceptions we use are listed.
    products_of = {
        ("swift-nio", "NIOCore"): {"NIOCore"},
        ("swift-service-lifecycle", "ServiceLifecycle"): {"ServiceLifecycle"},
    }
    problems = []
    for target in package["targets"]:
        if target["type"] == "system":
            continue
        default_root = "Tests" if target["type"] == "test" else "Sources"
        directory = target.get("path") or os.path.join(default_root, target["name"])
        declared = declared_dependencies(target, products_of)
        imported = imported_modules(directory)
        for module, path in sorted(imported.items()):
            if module in TOOLCHAIN_MODULES or module == target["name"]:
                continue
            if module not in declared:
                problems.append(f"{path}: imports {module}, which {target['name']} does not declare")
        for module in sorted(declared - set(imported)):
            problems.append(f"Package.swift: {target['name']} declares {module} but no file of it imports it")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} dependency problem(s): Package.swift must say exactly what each target imports")
        return 1
    print(f"imports match Package.swift for {len(package['targets'])} targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())

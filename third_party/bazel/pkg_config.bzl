"""A repository rule that turns pkg-config modules into cc_library targets.

Each entry of `modules` maps a target name to pkg-config module names; the target gets
`pkg-config --cflags` as copts and `pkg-config --libs` as linkopts, so transitive link
flags (Abseil's many small libraries, for instance) are never hand-kept. A missing module
fails the build with the command that would install it.
"""

def _pkg_config(ctx, flag, modules):
    res = ctx.execute(["pkg-config", flag] + modules)
    if res.return_code != 0:
        fail("pkg-config %s %s failed: %s\nRun tools/setup.sh to install the Debian packages." %
             (flag, " ".join(modules), res.stderr))
    return [f for f in res.stdout.strip().split(" ") if f]

def _pkg_config_repository_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules in ctx.attr.modules.items():
        cflags = _pkg_config(ctx, "--cflags", modules)
        libs = _pkg_config(ctx, "--libs", modules) + ctx.attr.extra_linkopts.get(name, [])

        # Every module here installs under /usr/include, which the compiler searches
        # already; defines must reach dependents, so they become `defines`.
        extra_includes = [f for f in cflags if f.startswith("-I") and f != "-I/usr/include"]
        if extra_includes:
            fail("pkg-config module(s) %s need include dirs %s outside /usr/include" %
                 (modules, extra_includes))
        lines.append("cc_library(")
        lines.append("    name = %r," % name)
        lines.append("    defines = %r," % [f[2:] for f in cflags if f.startswith("-D")])
        lines.append("    linkopts = %r," % libs)
        lines.append(")")
        lines.append("")
    ctx.file("BUILD.bazel", "\n".join(lines))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)

pkg_config_repository = repository_rule(
    implementation = _pkg_config_repository_impl,
    attrs = {
        "modules": attr.string_list_dict(mandatory = True),
        "extra_linkopts": attr.string_list_dict(),
    },
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)

"""Packaging for mmfm. All metadata and requirements live in settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini")
cfg = cfg["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]
lic = licenses[cfg["license"].lower()]

def reqs(key):
    "Requirements listed under `key` in settings.ini (space separated)."
    return cfg.get(key, "").split()

# Every `<name>_requirements` key other than the core list becomes the extra `<name>`.
extras = {k[: -len("_requirements")]: reqs(k) for k in cfg if k.endswith("_requirements") and k != "requirements"}
extras["all"] = sorted({r for k, v in extras.items() if k != "dev" for r in v})

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license=lic[0],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "License :: " + lic[1],
        "Natural Language :: " + cfg["language"].title(),
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["mmfm", "mmfm.*"]),
    include_package_data=True,
    package_data={"mmfm": ["assets/*"]},
    install_requires=reqs("requirements"),
    extras_require=extras,
    python_requires=">=" + cfg["min_python"],
    zip_safe=False,
    entry_points={
        "console_scripts": cfg["console_scripts"].split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
)

import subprocess
import sys


def test_building_the_cli_imports_no_heavy_library():
    code = (
        "import sys, convergent.cli; convergent.cli.build_parser(); "
        "heavy = [m for m in ('torch', 'transformers', 'gensim', 'matplotlib', 'ray', 'pandas') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at CLI start-up: {out.stdout.strip()}"


def test_version_prints_the_installed_version():
    out = subprocess.run([sys.executable, "-m", "convergent", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("convergent 0.")

# Sourced by the device scripts from the repository root: sets $py (PYTHON, default python3),
# installs the carried wheels of WHEELS (default .device/wheels; empty: skip) into /tmp/site, puts
# them and src/ on PYTHONPATH, and exits 2 with one line when they do not install or crackscope
# does not import.
wheels=${WHEELS-.device/wheels}
py=${PYTHON:-python3}
if [ -n "$wheels" ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl \
    || { echo "could not install the wheels of $wheels" >&2; exit 2; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$py" -c "import crackscope.cli" || { echo "crackscope does not import with $py" >&2; exit 2; }

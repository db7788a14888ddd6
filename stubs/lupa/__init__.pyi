# The part of lupa the Kong double uses (LuaJIT 2.1 through lupa.luajit21); lupa ships no types.

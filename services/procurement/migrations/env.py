from mesh.migrations.env import run

run()

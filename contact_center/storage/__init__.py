"""The contact-centre database: models, migrations, engines, bulk loads, and the load,
campaign and results logic that reads and writes it.
"""

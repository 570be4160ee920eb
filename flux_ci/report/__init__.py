"""Results: the typed report (`models`), rendered once as a table, JSON, dotenv (`render`) or Markdown
(`markdown`), the lines people read while a command runs (`progress`, `describe`) and GitHub Actions'
files (`github`). Imports the ground floor only."""

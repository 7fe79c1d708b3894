"""The manager dashboard: static page + script served by the API, charts with plotly.js."""

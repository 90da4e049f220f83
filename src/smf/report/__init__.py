"""Reporting: eval JSONs into tables, figures and the trade-off report, with the
statistics (bootstrap intervals, chance, churn, retention) behind them.
"""

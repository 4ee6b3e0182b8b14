"""rvs_mi.volume"""

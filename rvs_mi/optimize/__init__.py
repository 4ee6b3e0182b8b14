"""rvs_mi.optimize"""

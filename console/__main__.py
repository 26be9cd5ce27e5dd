from console.startup import main

if __name__ == "__main__":
    main()
